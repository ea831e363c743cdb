//! CEL rules on the NetworkPolicy fields a component passes through
//! (`ingressFrom`, `egressTo`): what the API server would refuse in the
//! component's NetworkPolicy (a port out of range, an `ipBlock` that is no
//! CIDR) is refused at admission instead, with the field named, so that a
//! policy is never refused later while what it guards runs. The types are
//! Kubernetes' own, so the rules are laid into their generated schema; the
//! builder checks the same again for objects stored before (build/admission.rs).
//!
//! Bounds keep the rules within the CRD's CEL cost budget: CIDR strings are
//! short, and a rule's peers and an ipBlock's exceptions fewer than the
//! generic limits of crd.rs.

use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyPeer};
use serde_json::{Map, Value, json};

/// Longest CIDR (an IPv6 address in full, with /128).
const MAX_CIDR: u64 = 64;
/// Most exceptions in one ipBlock.
const MAX_EXCEPT: u64 = 8;
/// Most peers in one egress rule.
const MAX_PEERS: u64 = 8;
/// Longest port name (an IANA service name).
const MAX_PORT_NAME: u64 = 15;
/// Most egress rules of one component.
const MAX_EGRESS_RULES: u64 = 16;

const PEER_RULES: [(&str, &str, &str); 2] = [
    (
        "has(self.ipBlock) || has(self.podSelector) || has(self.namespaceSelector)",
        "",
        "a peer needs podSelector, namespaceSelector or ipBlock",
    ),
    (
        "!has(self.ipBlock) || !(has(self.podSelector) || has(self.namespaceSelector))",
        "",
        "ipBlock cannot be combined with podSelector or namespaceSelector in one peer",
    ),
];

const CIDR_RULE: (&str, &str) = (
    "isCIDR(self) && cidr(self) == cidr(self).masked()",
    "ipBlock.cidr: must be a CIDR such as 10.0.0.0/8 or 2001:db8::/64, with no bits set after the prefix",
);

const EXCEPT_RULE: (&str, &str, &str) = (
    "!has(self.except) || !isCIDR(self.cidr) || self.except.all(e, isCIDR(e) && cidr(e) == cidr(e).masked() && cidr(self.cidr).containsCIDR(cidr(e)) && cidr(e).prefixLength() > cidr(self.cidr).prefixLength())",
    ".except",
    "ipBlock.except: every entry must be a CIDR (no bits set after the prefix) strictly inside ipBlock.cidr",
);

const PORT_RULES: [(&str, &str, &str); 3] = [
    (
        "!has(self.port) || (type(self.port) == int ? (self.port >= 1 && self.port <= 65535) : (self.port.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && self.port.matches('[a-z]') && !self.port.contains('--')))",
        ".port",
        "port: must be a number from 1 to 65535 or a port name (a-z, 0-9 and '-', with a letter, no '--')",
    ),
    (
        "!has(self.endPort) || (has(self.port) && type(self.port) == int && self.endPort >= self.port && self.endPort <= 65535)",
        ".endPort",
        "endPort: needs a numeric port, and must be from that port to 65535",
    ),
    (
        "!has(self.protocol) || self.protocol in ['TCP', 'UDP', 'SCTP']",
        ".protocol",
        "protocol: must be TCP, UDP or SCTP",
    ),
];

/// Schema of `ingressFrom`: NetworkPolicy peers with the rules.
pub fn ingress_from_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    with_rules(generator.subschema_for::<Option<Vec<NetworkPolicyPeer>>>())
}

/// Schema of `egressTo`: NetworkPolicy egress rules with the rules.
pub fn egress_to_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = with_rules(generator.subschema_for::<Option<Vec<NetworkPolicyEgressRule>>>());
    if let Some(list) = schema.as_object_mut() {
        list.insert("maxItems".into(), MAX_EGRESS_RULES.into());
    }
    schema
}

fn with_rules(schema: schemars::Schema) -> schemars::Schema {
    let mut value = schema.to_value();
    lay(&mut value);
    schemars::Schema::try_from(value).unwrap_or_default()
}

/// Walks the schema and adds the rules where the peers, ipBlocks and ports
/// are: found by their properties, however deep.
fn lay(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        if let Some(block) = properties.get_mut("ipBlock").and_then(Value::as_object_mut) {
            ip_block(block);
        }
        if let Some(to) = properties.get_mut("to").and_then(Value::as_object_mut) {
            to.insert("maxItems".into(), MAX_PEERS.into());
        }
        if let Some(protocol) = properties
            .get_mut("protocol")
            .and_then(Value::as_object_mut)
        {
            protocol.insert("maxLength".into(), 16.into());
        }
    }
    let has = |name: &str| object.get("properties").and_then(|p| p.get(name)).is_some();
    let (peer, port) = (has("ipBlock"), has("endPort"));
    if peer {
        add(object, &PEER_RULES);
    }
    if port {
        add(object, &PORT_RULES);
        // A port name is at most 15 characters; the bound also keeps the
        // rule's string matching within the cost budget (an int-or-string
        // has no other length).
        if let Some(number_or_name) = object
            .get_mut("properties")
            .and_then(|p| p.get_mut("port"))
            .and_then(Value::as_object_mut)
        {
            number_or_name.insert("maxLength".into(), MAX_PORT_NAME.into());
        }
    }
    for key in ["properties", "items"] {
        match object.get_mut(key) {
            Some(Value::Object(children)) if key == "properties" => {
                children.values_mut().for_each(lay);
            }
            Some(child) if key == "items" => lay(child),
            _ => {}
        }
    }
}

fn ip_block(block: &mut Map<String, Value>) {
    add(block, &[EXCEPT_RULE]);
    let Some(properties) = block.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(cidr) = properties.get_mut("cidr").and_then(Value::as_object_mut) {
        cidr.insert("maxLength".into(), MAX_CIDR.into());
        add(cidr, &[(CIDR_RULE.0, "", CIDR_RULE.1)]);
    }
    if let Some(except) = properties.get_mut("except").and_then(Value::as_object_mut) {
        except.insert("maxItems".into(), MAX_EXCEPT.into());
        if let Some(items) = except.get_mut("items").and_then(Value::as_object_mut) {
            items.insert("maxLength".into(), MAX_CIDR.into());
        }
    }
}

fn add(object: &mut Map<String, Value>, rules: &[(&str, &str, &str)]) {
    let list = object
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        for (rule, field_path, message) in rules {
            let mut r = json!({"rule": rule, "message": message});
            if !field_path.is_empty() {
                r["fieldPath"] = json!(field_path);
            }
            list.push(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn component() -> Value {
        let crd = serde_json::to_value(super::super::crd::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["components"]["items"]["properties"]
            .clone()
    }

    fn rules(schema: &Value) -> Vec<String> {
        schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["rule"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn peers_and_ports_carry_their_rules_and_bounds() {
        let c = component();
        let ingress_peer = &c["ingressFrom"]["items"];
        let egress = &c["egressTo"];
        let egress_peer = &egress["items"]["properties"]["to"]["items"];
        for peer in [ingress_peer, egress_peer] {
            assert_eq!(rules(peer).len(), 2, "{peer}");
            let block = &peer["properties"]["ipBlock"];
            assert!(rules(block)[0].contains("containsCIDR"), "{block}");
            let cidr = &block["properties"]["cidr"];
            assert!(rules(cidr)[0].starts_with("isCIDR(self)"), "{cidr}");
            // Short strings and few items keep the rules within the CEL budget.
            assert_eq!(cidr["maxLength"], 64);
            assert_eq!(block["properties"]["except"]["maxItems"], 8);
            assert_eq!(block["properties"]["except"]["items"]["maxLength"], 64);
        }
        assert_eq!(egress["maxItems"], 16);
        assert_eq!(egress["items"]["properties"]["to"]["maxItems"], 8);
        let port = &egress["items"]["properties"]["ports"]["items"];
        let port_rules = rules(port);
        assert!(port_rules[0].contains("self.port <= 65535"), "{port}");
        assert_eq!(port["properties"]["port"]["maxLength"], 15);
        assert!(port_rules[1].contains("self.endPort"), "{port}");
    }

    #[test]
    fn annotations_and_endpoints_carry_their_rules() {
        let annotations = rules(&component()["podAnnotations"]);
        assert!(
            annotations
                .iter()
                .any(|r| r.contains("container.apparmor.security.beta.kubernetes.io/"))
        );
        assert!(
            annotations
                .iter()
                .any(|r| r.contains("seccomp.security.alpha.kubernetes.io/"))
        );

        let crd = serde_json::to_string(&super::super::crd::crd()).unwrap();
        // The backup targets of both stores and the restore source.
        assert_eq!(
            crd.matches("s3.endpoint: the port must be a number from 1 to 65535")
                .count(),
            3
        );
    }
}
