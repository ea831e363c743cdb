// kstatus-check prints what kstatus (sigs.k8s.io/cli-utils), the library Flux
// and kpt use to wait for resources, computes for each object it reads: a
// JSON object or a List (`kubectl get -o json`) on stdin, one line per
// object: "<namespace>/<name> <status> <message>". The e2e suite runs it on
// live AppStacks.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	// Numbers as int64 where they are whole, as unstructured objects need.
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	var object map[string]interface{}
	if err := json.Unmarshal(input, &object); err != nil {
		fail("stdin is not a JSON object: %v", err)
	}
	items := []interface{}{object}
	if list, ok := object["items"].([]interface{}); ok {
		items = list
	}
	for _, item := range items {
		fields, ok := item.(map[string]interface{})
		if !ok {
			fail("an item is not an object")
		}
		u := &unstructured.Unstructured{Object: fields}
		result, err := status.Compute(u)
		if err != nil {
			fail("%s/%s: %v", u.GetNamespace(), u.GetName(), err)
		}
		fmt.Printf("%s/%s %s %s\n", u.GetNamespace(), u.GetName(), result.Status, result.Message)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus-check: "+format+"\n", args...)
	os.Exit(1)
}
