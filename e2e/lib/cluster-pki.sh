# shellcheck shell=bash
# Certificates and kubeconfigs of the local cluster, made with openssl and kept
# in $PKI. Each is issued once and re-issued only when its subject, SANs or CA
# changed (a new node address) or it expires within 30 days. Sourced by cluster.sh.

_pki_ca() { # name cn
  local key=$PKI/$1.key crt=$PKI/$1.crt
  [[ -f $key && -f $crt ]] && openssl x509 -checkend 2592000 -noout -in "$crt" >/dev/null && return 0
  openssl genrsa -out "$key" 2048 2>/dev/null
  openssl req -x509 -new -key "$key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$crt" 2>/dev/null
  log "  issued CA $1"
}

# _pki_leaf NAME CA CN ORG USAGE SANS: USAGE is clientAuth, serverAuth or both
# comma-separated; SANS an openssl subjectAltName value or empty.
_pki_leaf() {
  local name=$1 ca=$2 cn=$3 org=$4 usage=$5 sans=$6
  local key=$PKI/$name.key crt=$PKI/$name.crt spec=$PKI/$name.spec want ext subj
  want="ca=$(openssl x509 -noout -fingerprint -sha256 -in "$PKI/$ca.crt") cn=$cn o=$org usage=$usage sans=$sans"
  if [[ -f $key && -f $crt && -f $spec && $(<"$spec") == "$want" ]] \
    && openssl x509 -checkend 2592000 -noout -in "$crt" >/dev/null; then
    return 0
  fi
  [[ -f $key ]] || openssl genrsa -out "$key" 2048 2>/dev/null
  subj="/CN=$cn"
  [[ -n $org ]] && subj="/O=$org$subj"
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -key "$key" -subj "$subj" 2>/dev/null \
    | openssl x509 -req -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 825 -sha256 -extfile "$ext" -out "$crt" 2>/dev/null
  rm -f "$ext"
  echo "$want" >"$spec"
  log "  issued $name ($cn)"
}

# _kubeconfig FILE CERT SERVER: a kubeconfig with the credentials embedded, so
# it can be copied anywhere.
_kubeconfig() {
  local file=$1 cert=$2 server=$3 tmp
  tmp=$file.tmp
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: appstack
    cluster:
      server: $server
      certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
  - name: $cert
    user:
      client-certificate-data: $(base64 -w0 <"$PKI/$cert.crt")
      client-key-data: $(base64 -w0 <"$PKI/$cert.key")
contexts:
  - name: appstack
    context: {cluster: appstack, user: $cert}
current-context: appstack
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

pki_ensure() {
  local ip=$1 local_api=https://127.0.0.1:$API_PORT
  mkdir -p "$PKI" "$KUBECONFIG_DIR"
  chmod 700 "$PKI"
  _pki_ca ca appstack-cluster-ca
  # Signs the aggregation layer's proxy identity, apart from the cluster CA.
  _pki_ca front-proxy-ca appstack-front-proxy-ca
  [[ -f $PKI/sa.key ]] || {
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  }
  local api_sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  api_sans+=",DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,DNS:$NODE_NAME"
  api_sans+=",IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$ip"
  _pki_leaf apiserver ca kube-apiserver "" serverAuth "$api_sans"
  # The API server's identity towards kubelets (logs, exec, port-forward).
  _pki_leaf apiserver-kubelet-client ca kube-apiserver-kubelet-client system:masters clientAuth ""
  _pki_leaf front-proxy-client front-proxy-ca front-proxy-client "" clientAuth ""
  _pki_leaf admin ca appstack-admin system:masters clientAuth ""
  _pki_leaf kube-controller-manager ca system:kube-controller-manager "" clientAuth ""
  _pki_leaf kube-scheduler ca system:kube-scheduler "" clientAuth ""
  _pki_leaf kube-proxy ca system:kube-proxy "" clientAuth ""
  _pki_leaf kubelet ca "system:node:$NODE_NAME" system:nodes clientAuth ""
  # Signed by the cluster CA, so the API server and metrics-server verify the kubelet.
  _pki_leaf kubelet-serving ca "$NODE_NAME" "" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:$ip,IP:127.0.0.1"
  _pki_leaf coredns ca appstack:coredns "" clientAuth ""
  _pki_leaf metrics-server ca appstack:metrics-server "" clientAuth ""
  _pki_leaf metrics-server-serving ca metrics-server.kube-system.svc "" serverAuth \
    "DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.$CLUSTER_DOMAIN,IP:$ip"
  _pki_leaf local-path-provisioner ca appstack:local-path-provisioner "" clientAuth ""
  _pki_leaf kube-router ca appstack:kube-router "" clientAuth ""

  local c
  for c in kube-controller-manager kube-scheduler kube-proxy kubelet coredns metrics-server local-path-provisioner kube-router; do
    _kubeconfig "$KUBECONFIG_DIR/$c.kubeconfig" "$c" "$local_api"
  done
  _kubeconfig "$ADMIN_KUBECONFIG" admin "$local_api"
}
