//! Where the bytes of evidence live: a directory (the default), any S3-compatible object store (for several nodes on one PostgreSQL), or memory (embedded uses and tests that store nothing), through the `object_store` crate. Blobs are named by their SHA-256, so identical files are stored once.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The blob store of evidence. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// How it was named (`memory`, a directory, `s3://bucket/prefix`), for logs.
    pub name: String,
}

/// A failure of the blob store itself.
#[derive(Debug, thiserror::Error)]
#[error("blob store {name}: {source}")]
pub struct BlobError {
    name: String,
    #[source]
    source: object_store::Error,
}

impl Blobs {
    /// Blobs kept in memory, gone with the process.
    pub fn memory() -> Blobs {
        Blobs {
            store: Arc::new(object_store::memory::InMemory::new()),
            name: "memory".into(),
        }
    }

    /// Opens the store named by `spec`: `s3://bucket[/prefix]` for an S3-compatible
    /// store (its endpoint, region and keys from the usual `AWS_*` variables:
    /// `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP`), `memory`, or else a directory (made if missing).
    pub fn open(spec: &str) -> Result<Blobs, String> {
        let store: Arc<dyn ObjectStore> = if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{spec}: no bucket named"));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| format!("{spec}: {e}"))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else if spec == "memory" {
            return Ok(Blobs::memory());
        } else {
            std::fs::create_dir_all(spec).map_err(|e| format!("{spec}: {e}"))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(spec)
                    .map_err(|e| format!("{spec}: {e}"))?,
            )
        };
        Ok(Blobs {
            store,
            name: spec.to_string(),
        })
    }

    fn error(&self, source: object_store::Error) -> BlobError {
        BlobError {
            name: self.name.clone(),
            source,
        }
    }

    /// Stores `bytes` under `key` unless something is stored there already (blobs are
    /// named by their content, so what is there is the same).
    pub async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let path = Path::from(key);
        match self.store.head(&path).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error(e)),
        }
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Removes what is stored under `key` (nothing there is no error).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The bytes stored under `key`; `None` when nothing is.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        match self.store.get(&Path::from(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.error(e))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// The key of a file's bytes: `blobs/9f/9f2c…`.
pub fn blob_key(sha256: &str) -> String {
    format!("blobs/{}/{sha256}", &sha256[..2.min(sha256.len())])
}

/// The key of an image's thumbnail.
pub fn thumbnail_key(sha256: &str) -> String {
    format!("thumbnails/{}/{sha256}.jpg", &sha256[..2.min(sha256.len())])
}
