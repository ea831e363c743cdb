//! crds/appstack.dev_appstacks.yaml is generated from the Rust types; this
//! fails when they drift apart. Fix: `make generate`.

#[test]
fn checked_in_crd_matches_the_types() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/appstack.dev_appstacks.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap();
    let generated = appstack::api::crd_yaml().unwrap();
    assert!(
        checked_in == generated,
        "{} is out of date with src/api: run `make generate` and commit the result",
        path.display()
    );
}
