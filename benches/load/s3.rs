//! `load presign`: presigned URLs (SigV4 in the query) for one object, so `upload
//! --put-url` and `download --get-url` send the same bytes straight to the object
//! store with the same client and code that send them to Ferry. Signed by the
//! `object_store` crate, the one Ferry's S3 blob store uses.

use std::time::Duration;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    /// The store's S3 endpoint, on a loopback address (e.g. http://127.0.0.1:3900).
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    region: String,
    #[arg(long)]
    bucket: String,
    #[arg(long)]
    access_key_id: String,
    #[arg(long)]
    secret_access_key: String,
    /// The object's key.
    #[arg(long)]
    key: String,
    #[arg(long, default_value_t = 3600)]
    expires_secs: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    // Refuse anything but loopback, as every load tool does.
    crate::http::client(&args.endpoint, false)?;
    // object_store's HTTP client has no TLS provider of its own; ring, as Ferry's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = AmazonS3Builder::new()
        .with_endpoint(&args.endpoint)
        .with_region(&args.region)
        .with_bucket_name(&args.bucket)
        .with_access_key_id(&args.access_key_id)
        .with_secret_access_key(&args.secret_access_key)
        .with_virtual_hosted_style_request(false)
        .with_allow_http(true)
        .build()
        .context("S3 client for the object store")?;
    let path = Path::from(args.key.as_str());
    let expires = Duration::from_secs(args.expires_secs);
    let put = store.signed_url(Method::PUT, &path, expires).await?;
    let get = store.signed_url(Method::GET, &path, expires).await?;
    let delete = store.signed_url(Method::DELETE, &path, expires).await?;
    Ok(json!({ "put": put.as_str(), "get": get.as_str(), "delete": delete.as_str() }))
}
