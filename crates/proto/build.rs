//! Compiles `proto/sunshine/v1/*.proto` with protox (pure Rust: no system `protoc`), writes the
//! encoded descriptor set for gRPC reflection, and generates prost messages and tonic services.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let package_dir = proto_root.join("sunshine/v1");

    let mut proto_files = Vec::new();
    for entry in std::fs::read_dir(&package_dir)? {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|extension| extension == "proto")
        {
            proto_files.push(path);
        }
    }
    proto_files.sort();
    println!("cargo:rerun-if-changed={}", package_dir.display());
    for file in &proto_files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let file_descriptor_set = protox::compile(&proto_files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("sunshine_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&file_descriptor_set),
    )?;

    // Maps as BTreeMap: a message then encodes to the same bytes every time, so the digest of a
    // retried request (`sunshine_eventlog::request_digest`) is stable.
    // `prost::Name` on every message: an event's stored type is its message's full name.
    let mut prost_config = prost_build::Config::new();
    prost_config.enable_type_names();
    tonic_prost_build::configure()
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(file_descriptor_set, prost_config)?;
    Ok(())
}
