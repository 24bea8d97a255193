//! Long because it is the whole S3 store: the client and its start check, the
//! multipart writer, and the ListMultipartUploads reader object_store lacks.
//!
//! The S3 store: each blob is the object `PREFIX/blobs/<uuid>` in one bucket of an
//! S3-compatible object store (Garage, MinIO, Ceph RGW, AWS S3, B2, R2), through
//! Apache Arrow's `object_store` client.
//!
//! An upload streams with flat memory: bytes gather into a part of `PART` bytes;
//! a file that fits in one part is one PUT, a larger one a multipart upload with
//! one part on the wire while the next fills. The object exists only once the PUT
//! or the multipart completion returns; an upload dropped before that aborts its
//! multipart upload, and the sweeper aborts the ones a crash left behind.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, MultipartId, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use super::{ByteStream, Hashes, Stored, UploadError};
use crate::config::Settings;

/// The size of one part of a multipart upload (S3 wants at least 5 MiB for all but
/// the last). An upload holds at most two: one being sent, one filling, so this
/// keeps an upload's memory under 16 MB.
const PART: usize = 6 * 1024 * 1024;
/// Reads of a file being copied into the store (a finished resumable upload).
const READ_CHUNK: usize = 1024 * 1024;
/// A store that does not accept a connection by then is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A request whose response sends nothing for this long has failed.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the check at start may take before the start fails.
const START_CHECK: Duration = Duration::from_secs(10);
/// How long a presigned download URL handed to nginx stays valid: nginx uses it at
/// once, so a minute covers any clock skew with the store.
const PRESIGNED_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct S3Blobs {
    s3: Arc<AmazonS3>,
    /// `PREFIX/blobs`: every blob's key is a child.
    blobs: Key,
    /// `PREFIX/probe`: readiness writes go here, apart from the blobs.
    probes: Key,
    /// The bucket's URL: ENDPOINT/BUCKET (path style) or BUCKET.ENDPOINT.
    bucket_url: url::Url,
    bucket: String,
    region: String,
    credential: AwsCredential,
    /// For the one request `object_store` does not make: listing multipart uploads.
    http: reqwest13::Client,
}

fn unavailable(e: object_store::Error) -> UploadError {
    tracing::warn!(error = %e, "the object store failed an upload");
    UploadError::Unavailable(e.to_string())
}

fn io_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(e),
    }
}

impl S3Blobs {
    /// Build the client and check, within `START_CHECK`, that the bucket takes a
    /// write and a delete.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let endpoint = settings
            .s3_endpoint
            .clone()
            .context("FERRY_S3_ENDPOINT is not set")?;
        let bucket = settings
            .s3_bucket
            .clone()
            .context("FERRY_S3_BUCKET is not set")?;
        let credential = AwsCredential {
            key_id: settings
                .s3_access_key_id
                .clone()
                .context("FERRY_S3_ACCESS_KEY_ID is not set")?,
            secret_key: settings
                .s3_secret_access_key
                .as_ref()
                .context("FERRY_S3_SECRET_ACCESS_KEY is not set")?
                .0
                .expose()
                .to_string(),
            token: None,
        };
        let bucket_url = bucket_url(&endpoint, &bucket, settings.s3_path_style)?;
        // reqwest is built without a TLS provider of its own: ring, as for the
        // database's TLS. Already installed is fine (a second store, a test).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        };
        // No overall timeout: a download of gigabytes may take long. A silent
        // connection fails after READ_TIMEOUT instead.
        let options = ClientOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_read_timeout(READ_TIMEOUT)
            .with_timeout_disabled()
            .with_allow_http(endpoint.scheme() == "http");
        // object_store adds the bucket to a path-style endpoint itself, and takes a
        // virtual-hosted one as the bucket's own URL.
        let client_endpoint = match settings.s3_path_style {
            true => endpoint.as_str().trim_end_matches('/').to_string(),
            false => bucket_url.as_str().trim_end_matches('/').to_string(),
        };
        let s3 = AmazonS3Builder::new()
            .with_endpoint(client_endpoint)
            .with_virtual_hosted_style_request(!settings.s3_path_style)
            .with_bucket_name(&bucket)
            .with_region(&settings.s3_region)
            .with_access_key_id(&credential.key_id)
            .with_secret_access_key(&credential.secret_key)
            .with_allow_http(endpoint.scheme() == "http")
            // Ferry hashes every byte itself (SHA-256, checked again by backups and
            // copies); signing each part's payload too would be a second pass
            // over it, as costly as the first.
            .with_unsigned_payload(true)
            .with_retry(retry)
            .with_client_options(options)
            .build()
            .context("cannot set up the S3 client")?;
        let prefix = Key::from(settings.s3_prefix.as_str());
        let http = reqwest13::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .context("cannot set up the S3 client")?;
        let store = Self {
            s3: Arc::new(s3),
            blobs: prefix.clone().join("blobs"),
            probes: prefix.join("probe"),
            bucket_url,
            bucket,
            region: settings.s3_region.clone(),
            credential,
            http,
        };
        match tokio::time::timeout(START_CHECK, store.probe()).await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(e)) => anyhow::bail!("{}", store.explain(&e)),
            Err(_) => anyhow::bail!(
                "the object store at {} did not answer within {} s (FERRY_S3_ENDPOINT)",
                store.endpoint(),
                START_CHECK.as_secs()
            ),
        }
    }

    fn endpoint(&self) -> String {
        self.bucket_url.origin().ascii_serialization()
    }

    pub fn describe(&self) -> String {
        format!("bucket {} at {}", self.bucket, self.endpoint())
    }

    /// One line an operator can act on, for a failed request.
    pub fn explain(&self, e: &object_store::Error) -> String {
        let (endpoint, bucket) = (self.endpoint(), &self.bucket);
        match e {
            object_store::Error::NotFound { .. } => format!(
                "the object store at {endpoint} has no bucket {bucket} (FERRY_S3_BUCKET; \
                 create it, e.g. `garage bucket create {bucket}`)"
            ),
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => format!(
                "the object store at {endpoint} refused key {}: check FERRY_S3_ACCESS_KEY_ID and \
                 FERRY_S3_SECRET_ACCESS_KEY, and that the key may read and write bucket {bucket}",
                self.credential.key_id
            ),
            e => format!(
                "cannot use the object store at {endpoint} (FERRY_S3_ENDPOINT): {}",
                short(e)
            ),
        }
    }

    fn key(&self, id: &uuid::Uuid) -> Key {
        self.blobs.clone().join(id.to_string())
    }

    /// Write and delete a small object: the bucket exists and the key may write.
    pub async fn probe(&self) -> object_store::Result<()> {
        let key = self.probes.clone().join(uuid::Uuid::new_v4().to_string());
        self.s3.put(&key, PutPayload::from_static(b"ok")).await?;
        self.s3.delete(&key).await
    }

    /// Receive blob `id`: nothing is sent until a part is full or `commit`.
    pub fn start_upload(&self, id: uuid::Uuid, limit: u64) -> Upload {
        Upload {
            s3: self.s3.clone(),
            id,
            key: self.key(&id),
            buffer: BytesMut::new(),
            hasher: Hashes::default(),
            size: 0,
            limit,
            multipart: None,
            parts: Vec::new(),
            sending: None,
            committing: false,
            done: false,
        }
    }

    pub async fn read(&self, id: &uuid::Uuid, start: u64, count: u64) -> io::Result<ByteStream> {
        let key = self.key(id);
        if count == 0 {
            // A range cannot be empty: ask only whether the blob is there.
            self.s3.head(&key).await.map_err(io_error)?;
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let options = GetOptions::new().with_range(Some(start..start + count));
        let got = self.s3.get_opts(&key, options).await.map_err(io_error)?;
        Ok(Box::pin(got.into_stream().map_err(io_error)))
    }

    pub async fn len(&self, id: &uuid::Uuid) -> io::Result<Option<u64>> {
        match self.s3.head(&self.key(id)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    pub async fn remove(&self, id: &uuid::Uuid) -> io::Result<()> {
        match self.s3.delete(&self.key(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Remove blob `id` in the background (called from `Drop`).
    pub fn discard(&self, id: &uuid::Uuid) {
        let (s3, key) = (self.s3.clone(), self.key(id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = s3.delete(&key).await {
                    tracing::warn!(%key, error = %e, "cannot remove an unrecorded file; the sweeper will");
                }
            });
        }
    }

    /// Copy the file at `path` into blob `id`, hashing it on the way.
    pub async fn adopt(&self, id: &uuid::Uuid, path: &Path) -> Result<Stored, UploadError> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut upload = self.start_upload(*id, u64::MAX);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            upload.write(&buf[..n]).await?;
        }
        upload.commit().await
    }

    pub async fn list(&self) -> io::Result<Vec<(uuid::Uuid, SystemTime)>> {
        let objects: Vec<_> = self
            .s3
            .list(Some(&self.blobs))
            .try_collect()
            .await
            .map_err(io_error)?;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let id = meta.location.filename()?.parse().ok()?;
                Some((id, meta.last_modified.into()))
            })
            .collect())
    }

    pub async fn is_empty(&self) -> io::Result<bool> {
        match self.s3.list(Some(&self.blobs)).next().await {
            None => Ok(true),
            Some(Ok(_)) => Ok(false),
            Some(Err(e)) => Err(io_error(e)),
        }
    }

    /// A presigned GET of blob `id`, as the path and query nginx appends to the
    /// store's endpoint (its internal location proxies there).
    pub async fn presigned_path(&self, id: &uuid::Uuid) -> io::Result<String> {
        let url = self
            .s3
            .signed_url(
                object_store::signer::Method::GET,
                &self.key(id),
                PRESIGNED_FOR,
            )
            .await
            .map_err(io_error)?;
        let path = url.path().trim_start_matches('/');
        Ok(match url.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        })
    }

    /// Abort the multipart uploads under this store's blobs started over
    /// `older_than` ago (a crash or a lost connection left them): they hold
    /// storage but are invisible to listings of objects.
    pub async fn sweep_incomplete(&self, older_than: Duration) -> anyhow::Result<usize> {
        let cutoff = SystemTime::now() - older_than;
        let mut markers: Option<(String, String)> = None;
        let mut aborted = 0;
        loop {
            let page = self.list_multipart_uploads(markers.as_ref()).await?;
            for upload in &page.uploads {
                if upload.initiated < cutoff {
                    let key = Key::from(upload.key.as_str());
                    match self.s3.abort_multipart(&key, &upload.upload_id).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => aborted += 1,
                        Err(e) => return Err(e).context("cannot abort a multipart upload"),
                    }
                }
            }
            match page.next {
                Some(next) => markers = Some(next),
                None => return Ok(aborted),
            }
        }
    }

    /// ListMultipartUploads under `PREFIX/blobs/`, signed with SigV4 by
    /// `object_store`'s signer and sent with reqwest.
    async fn list_multipart_uploads(
        &self,
        markers: Option<&(String, String)>,
    ) -> anyhow::Result<UploadsPage> {
        let mut url = self.bucket_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("uploads", "");
            query.append_pair("prefix", &format!("{}/", self.blobs));
            if let Some((key, upload)) = markers {
                query.append_pair("key-marker", key);
                query.append_pair("upload-id-marker", upload);
            }
        }
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.uri_mut() = url.as_str().parse().context("an S3 request URL")?;
        AwsAuthorizer::new(&self.credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .context("cannot sign an S3 request")?;
        let response = self
            .http
            .get(url.as_str())
            .headers(request.headers().clone())
            .send()
            .await
            .with_context(|| format!("cannot reach the object store at {}", self.endpoint()))?;
        let status = response.status();
        let body = response.text().await.context("listing multipart uploads")?;
        if !status.is_success() {
            anyhow::bail!("listing multipart uploads failed ({status}): {body}");
        }
        Ok(parse_uploads(&body))
    }
}

/// The first line of an error, without the retry details object_store adds.
fn short(e: &object_store::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text.lines().next().unwrap_or_default().to_string()
}

/// The bucket's URL for path-style (ENDPOINT/BUCKET) or virtual-hosted
/// (BUCKET.HOST) requests.
fn bucket_url(endpoint: &url::Url, bucket: &str, path_style: bool) -> anyhow::Result<url::Url> {
    let mut url = endpoint.clone();
    if path_style {
        url.set_path(bucket);
    } else {
        let host = url.host_str().context("FERRY_S3_ENDPOINT has no host")?;
        let virtual_host = format!("{bucket}.{host}");
        url.set_host(Some(&virtual_host))
            .context("FERRY_S3_ENDPOINT with the bucket before its host is not a URL")?;
    }
    Ok(url)
}

/// A blob being received into the store.
pub struct Upload {
    s3: Arc<AmazonS3>,
    id: uuid::Uuid,
    key: Key,
    /// The part filling: at most `PART` bytes.
    buffer: BytesMut,
    hasher: Hashes,
    size: u64,
    limit: u64,
    /// Once the file is larger than one part.
    multipart: Option<MultipartId>,
    parts: Vec<PartId>,
    /// The part on the wire.
    sending: Option<JoinHandle<object_store::Result<PartId>>>,
    /// Set once `commit` sent the object or its completion: whether it exists is
    /// then unknown until the answer.
    committing: bool,
    done: bool,
}

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        let mut rest = chunk;
        while !rest.is_empty() {
            let take = (PART - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == PART {
                let part = self.buffer.split().freeze();
                self.send_part(part).await?;
            }
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Send a full part: wait for the one on the wire, then start this one.
    async fn send_part(&mut self, part: bytes::Bytes) -> Result<(), UploadError> {
        let id = match &self.multipart {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .s3
                    .create_multipart(&self.key)
                    .await
                    .map_err(unavailable)?;
                self.multipart = Some(id.clone());
                id
            }
        };
        self.finish_sending().await?;
        let (s3, key, index) = (self.s3.clone(), self.key.clone(), self.parts.len());
        self.sending = Some(tokio::spawn(async move {
            s3.put_part(&key, &id, index, PutPayload::from(part)).await
        }));
        self.buffer.reserve(PART);
        Ok(())
    }

    async fn finish_sending(&mut self) -> Result<(), UploadError> {
        if let Some(sending) = self.sending.take() {
            let part = sending
                .await
                .map_err(|e| UploadError::Unavailable(format!("sending a part failed: {e}")))?
                .map_err(unavailable)?;
            self.parts.push(part);
        }
        Ok(())
    }

    /// Send what is left and complete the object.
    pub async fn commit(mut self) -> Result<Stored, UploadError> {
        match self.multipart.clone() {
            None => {
                let body = self.buffer.split().freeze();
                self.committing = true;
                self.s3
                    .put(&self.key, PutPayload::from(body))
                    .await
                    .map_err(unavailable)?;
            }
            Some(id) => {
                if !self.buffer.is_empty() {
                    let part = self.buffer.split().freeze();
                    self.send_part(part).await?;
                }
                self.finish_sending().await?;
                let parts = std::mem::take(&mut self.parts);
                self.committing = true;
                self.s3
                    .complete_multipart(&self.key, &id, parts)
                    .await
                    .map_err(unavailable)?;
            }
        }
        self.done = true;
        let (sha256, crc32) = self.hasher.finish();
        Ok(Stored {
            id: self.id,
            size: self.size,
            sha256,
            crc32,
        })
    }
}

impl Drop for Upload {
    /// An upload given up: stop its part, abort its multipart upload, and remove
    /// the object if a failed commit may have made it after all.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(sending) = self.sending.take() {
            sending.abort();
        }
        let multipart = self.multipart.take();
        if multipart.is_none() && !self.committing {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (s3, key, committing) = (self.s3.clone(), self.key.clone(), self.committing);
        runtime.spawn(async move {
            if let Some(id) = multipart
                && let Err(e) = s3.abort_multipart(&key, &id).await
            {
                tracing::warn!(%key, error = %e, "cannot abort a multipart upload; the sweeper will");
            }
            if committing {
                let _ = s3.delete(&key).await;
            }
        });
    }
}

/// One page of ListMultipartUploads.
struct UploadsPage {
    uploads: Vec<PendingUpload>,
    /// The markers of the next page, when the listing is truncated.
    next: Option<(String, String)>,
}

struct PendingUpload {
    key: String,
    upload_id: String,
    initiated: SystemTime,
}

/// The few fields Ferry needs from ListMultipartUploadsResult. S3's XML is
/// regular enough to read by its element names; an upload without a readable
/// Initiated time is taken as new, so it is never aborted by mistake.
fn parse_uploads(xml: &str) -> UploadsPage {
    let uploads = elements(xml, "Upload")
        .into_iter()
        .filter_map(|block| {
            let initiated = element(block, "Initiated")
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(SystemTime::from)
                .unwrap_or_else(SystemTime::now);
            Some(PendingUpload {
                key: unescape(element(block, "Key")?),
                upload_id: unescape(element(block, "UploadId")?),
                initiated,
            })
        })
        .collect();
    let truncated = element(xml, "IsTruncated") == Some("true");
    let next = truncated
        .then(|| {
            Some((
                unescape(element(xml, "NextKeyMarker")?),
                unescape(element(xml, "NextUploadIdMarker")?),
            ))
        })
        .flatten();
    UploadsPage { uploads, next }
}

/// The text of the first `<name>` element.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    elements(xml, name).into_iter().next()
}

/// The contents of every `<name>…</name>`.
fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_listings_are_read_with_their_markers() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Bucket>b</Bucket><IsTruncated>true</IsTruncated>
<NextKeyMarker>p/blobs/2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
<Upload><Key>p/blobs/1</Key><UploadId>u&amp;1</UploadId><Initiated>2020-01-02T03:04:05.000Z</Initiated></Upload>
<Upload><Key>p/blobs/2</Key><UploadId>u2</UploadId><Initiated>not a time</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page = parse_uploads(xml);
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "p/blobs/1");
        assert_eq!(page.uploads[0].upload_id, "u&1");
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_934_245);
        assert_eq!(page.uploads[0].initiated, old);
        // An unreadable time counts as now: never old enough to abort.
        assert!(page.uploads[1].initiated > old);
        assert_eq!(page.next, Some(("p/blobs/2".into(), "u2".into())));
        let last = parse_uploads("<IsTruncated>false</IsTruncated>");
        assert!(last.uploads.is_empty() && last.next.is_none());
    }

    #[test]
    fn bucket_urls_for_both_styles() {
        let endpoint = url::Url::parse("http://127.0.0.1:3900").expect("url");
        let path = bucket_url(&endpoint, "ferry", true).expect("path style");
        assert_eq!(path.as_str(), "http://127.0.0.1:3900/ferry");
        let endpoint = url::Url::parse("https://s3.example.org").expect("url");
        let hosted = bucket_url(&endpoint, "ferry", false).expect("virtual hosted");
        assert_eq!(hosted.as_str(), "https://ferry.s3.example.org/");
    }
}
