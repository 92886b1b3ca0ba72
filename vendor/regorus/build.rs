// sealgate's vendored copy (see ../README.md). Upstream's build script installs git
// hooks and embeds the commit hash of the checkout it is built in, which here would be
// sealgate's; opa.runtime() reports this fixed string instead.
fn main() {
    println!("cargo:rustc-env=GIT_HASH=regorus-0.14.1+sealgate.1");
    println!("cargo:rerun-if-changed=build.rs");
}
