use super::*;
use crate::blobs::sha256_hex;

#[tokio::test]
async fn abandoned_uploads_are_swept_and_live_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = LocalBlobs::open(dir.path(), 0).expect("open");
    let mut upload = live.start_upload(1 << 20, None).await.expect("start");
    upload.write(b"in progress").await.expect("write");
    // A second process starting now must not touch the first one's upload.
    let second = LocalBlobs::open(dir.path(), 0).expect("open second");
    assert_eq!(std::fs::read_dir(&live.tmp_dir).expect("read").count(), 1);
    drop(second);

    // Simulate a dead process: a tmp dir with no lock holder.
    let dead = dir.path().join("tmp").join("dead-process");
    std::fs::create_dir(&dead).expect("mkdir");
    std::fs::write(dead.join("x.part"), b"half").expect("write");
    let _third = LocalBlobs::open(dir.path(), 0).expect("open third");
    assert!(!dead.exists());
    assert_eq!(std::fs::read_dir(&live.tmp_dir).expect("read").count(), 1);
    drop(upload);
    assert_eq!(std::fs::read_dir(&live.tmp_dir).expect("read").count(), 0);
}

#[tokio::test]
async fn limit_is_enforced_while_streaming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = LocalBlobs::open(dir.path(), 0).expect("open");
    let mut upload = blobs.start_upload(10, None).await.expect("start");
    upload.write(b"12345").await.expect("first chunk fits");
    assert!(matches!(
        upload.write(b"678901").await,
        Err(UploadError::TooLarge { limit: 10 })
    ));
    drop(upload);
    assert_eq!(std::fs::read_dir(&blobs.tmp_dir).expect("read").count(), 0);
}

#[tokio::test]
async fn commit_moves_and_hashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = LocalBlobs::open(dir.path(), 0).expect("open");
    let mut upload = blobs.start_upload(100, Some(11)).await.expect("start");
    upload.write(b"hello ").await.expect("write");
    upload.write(b"world").await.expect("write");
    let id = uuid::Uuid::now_v7();
    let stored = upload.commit(&id).await.expect("commit");
    assert_eq!(stored.size, 11);
    assert_eq!(stored.sha256, sha256_hex(b"hello world"));
    assert_eq!(
        std::fs::read(blobs.path(&id)).expect("read"),
        b"hello world"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_uploads_are_buffered_and_hashed_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = LocalBlobs::open(dir.path(), 0).expect("open");
    let data: Vec<u8> = (0..WRITE_BUFFER * 3 + 12_345)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut upload = blobs.start_upload(u64::MAX, None).await.expect("start");
    // Odd chunk sizes, as a network delivers them, across buffer boundaries.
    for chunk in data.chunks(100_003) {
        upload.write(chunk).await.expect("write");
    }
    let id = uuid::Uuid::now_v7();
    let stored = upload.commit(&id).await.expect("commit");
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(stored.sha256, sha256_hex(&data));
    assert_eq!(std::fs::read(blobs.path(&id)).expect("read"), data);
    assert_eq!(std::fs::read_dir(&blobs.tmp_dir).expect("read").count(), 0);
}

#[test]
fn space_checks_count_what_an_upload_can_still_bring() {
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    let limit = 2 * GIB;
    // (on disk, pending, headroom, most, announced) -> may grow to
    let cases = [
        // A 3-byte file fits in 4 MiB above the reserve, announced or not.
        ((0, 3, 4 * MIB, 3, true), Some(3)),
        ((0, 3, 4 * MIB, limit, false), Some(4 * MIB)),
        // An announced file larger than the headroom stops at once.
        ((0, MIB, 4 * MIB, 6 * MIB, true), None),
        // A chunked body writes on until its bytes would reach the reserve.
        ((3 * MIB, MIB, MIB, limit, false), Some(4 * MIB)),
        ((3 * MIB, 2 * MIB, MIB, limit, false), None),
        ((0, 1, 0, limit, false), None),
        // Plenty of room: checked again after a window, or never for the rest.
        ((0, MIB, 100 * GIB, limit, false), Some(16 * MIB)),
        ((10 * MIB, MIB, 100 * GIB, 12 * MIB, true), Some(12 * MIB)),
        // A chunk larger than the window is room enough for itself.
        ((0, 32 * MIB, 100 * GIB, limit, false), Some(32 * MIB)),
    ];
    for ((on_disk, pending, headroom, most, announced), expected) in cases {
        let room = Room {
            on_disk,
            pending,
            headroom,
            most,
            announced,
        };
        assert_eq!(
            room.until(),
            expected,
            "on disk {on_disk}, pending {pending}, headroom {headroom}, most {most}, announced {announced}"
        );
    }
}

#[test]
fn a_full_disk_is_no_space_not_a_server_fault() {
    // Found by the soak test: a disk filled by someone else between two reserve
    // checks answered 500 instead of 507.
    for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
        assert!(matches!(
            UploadError::from(io::Error::from(kind)),
            UploadError::NoSpace
        ));
    }
    assert!(matches!(
        UploadError::from(io::Error::from(io::ErrorKind::PermissionDenied)),
        UploadError::Io(_)
    ));
}

#[test]
fn reserve_refuses_when_disk_would_fill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = LocalBlobs::open(dir.path(), u64::MAX).expect("open");
    assert!(!blobs.has_room_for(1).expect("statvfs"));
}
