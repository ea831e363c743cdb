# Chart targets; the top-level Makefile includes this file (include charts/chart.mk).
# chart-sync:  copy the generated CRD into the chart and re-render deploy/
# chart-check: fail when the chart's CRD or deploy/ drifted, then lint and test
#              the chart (cluster checks run when a cluster answers)
.PHONY: chart-sync chart-check chart-test-cluster

chart-sync:
	charts/sync-crd.sh

chart-check:
	charts/sync-crd.sh --check
	charts/test.sh

# Same, but a missing cluster is a failure (CI, after e2e/cluster.sh up).
chart-test-cluster:
	charts/sync-crd.sh --check
	charts/test.sh --cluster
