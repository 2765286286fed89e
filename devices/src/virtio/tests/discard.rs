//! Discard and write-zeroes: every segment served (or the request refused whole), guest
//! addresses never overflow.

use std::os::unix::fs::FileExt;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use vm_memory::{Bytes, GuestAddress};

use super::guest::Ring;
use super::{disk, rig, start, Rig, AVAIL, BUF, DESC, FEATURES, NEXT, USED, WRITE};
use crate::virtio::feature;

const SECTORS: u64 = 64;
const HDR: u64 = BUF;
const SEGS: u64 = BUF + 0x100;
const STATUS: u64 = BUF + 0x2000;

fn ring(r: &Rig) -> Ring {
    Ring {
        mem: r.mem.clone(),
        desc: DESC,
        avail: AVAIL,
        used: USED,
        size: 32,
    }
}

/// A disk of 0xab bytes, started with DISCARD and WRITE_ZEROES.
fn zero_rig() -> Rig {
    let mut r = rig(disk(&[0xab; SECTORS as usize * 512], false));
    let f = FEATURES | feature(VIRTIO_BLK_F_DISCARD) | feature(VIRTIO_BLK_F_WRITE_ZEROES);
    start(&mut r, f);
    r
}

/// Request `n` of `kind`: the header, then `data` (each (address, length) device-readable),
/// then the status byte; returns the status.
fn post(r: &Rig, n: u16, kind: u32, data: &[(u64, u32)]) -> u32 {
    let ring = ring(r);
    r.mem.write_obj(kind, GuestAddress(HDR)).unwrap();
    r.mem.write_obj(0u64, GuestAddress(HDR + 8)).unwrap();
    r.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    let mut descs = vec![(HDR, 16, 0)];
    descs.extend(data.iter().map(|&(a, l)| (a, l, 0)));
    descs.push((STATUS, 1, WRITE));
    let d0 = 4 * n;
    for (i, &(addr, len, flags)) in (0u16..).zip(&descs) {
        let next = if usize::from(i) + 1 < descs.len() {
            NEXT
        } else {
            0
        };
        ring.set_desc(d0 + i, addr, len, flags | next, d0 + i + 1);
    }
    ring.post(d0);
    r.kick.write(1).unwrap();
    r.handler.handle(0, false);
    assert_eq!(ring.used_idx(), n + 1, "request {n} given back");
    u32::from(r.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap())
}

/// Segments (sector, count, flags) written at SEGS.
fn segments(r: &Rig, segs: &[(u64, u32, u32)]) -> u32 {
    for (i, &(sector, count, flags)) in (0u64..).zip(segs) {
        let at = SEGS + 16 * i;
        r.mem.write_obj(sector, GuestAddress(at)).unwrap();
        r.mem.write_obj(count, GuestAddress(at + 8)).unwrap();
        r.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
    }
    16 * segs.len() as u32
}

/// Which of the disk's sectors read as zeros.
fn zeroed(r: &Rig) -> Vec<u64> {
    (0..SECTORS)
        .filter(|&s| {
            let mut b = [0u8; 512];
            r.disk.read_exact_at(&mut b, s * 512).unwrap();
            b.iter().all(|&x| x == 0)
        })
        .collect()
}

#[test]
fn every_segment_of_a_request_is_served() {
    let r = zero_rig();
    let unmap = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    let len = segments(&r, &[(2, 1, 0), (10, 2, unmap)]);
    assert_eq!(
        post(&r, 0, VIRTIO_BLK_T_WRITE_ZEROES, &[(SEGS, len)]),
        VIRTIO_BLK_S_OK
    );
    assert_eq!(zeroed(&r), [2, 10, 11]);
    // Three discard segments, the second split over two descriptors (10 + 6 bytes).
    let len = segments(&r, &[(20, 1, 0), (30, 1, 0), (40, 2, 0)]);
    let data = [(SEGS, 26), (SEGS + 26, len - 26)];
    assert_eq!(post(&r, 1, VIRTIO_BLK_T_DISCARD, &data), VIRTIO_BLK_S_OK);
    assert_eq!(zeroed(&r), [2, 10, 11, 20, 30, 40, 41]);
}

/// What a case is, its request type, its segments (sector, count, flags), the status.
type Case = (&'static str, u32, &'static [(u64, u32, u32)], u32);

#[test]
fn a_request_with_one_bad_segment_is_refused_whole() {
    let r = zero_rig();
    let cases: [Case; 5] = [
        (
            "second segment past the end",
            VIRTIO_BLK_T_WRITE_ZEROES,
            &[(2, 1, 0), (SECTORS, 1, 0)],
            VIRTIO_BLK_S_IOERR,
        ),
        (
            "an unknown flag",
            VIRTIO_BLK_T_WRITE_ZEROES,
            &[(2, 1, 0), (3, 1, 2)],
            VIRTIO_BLK_S_UNSUPP,
        ),
        (
            "discard with the unmap flag",
            VIRTIO_BLK_T_DISCARD,
            &[(2, 1, 0), (3, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)],
            VIRTIO_BLK_S_UNSUPP,
        ),
        (
            "257 segments",
            VIRTIO_BLK_T_DISCARD,
            &[(4, 1, 0); 257],
            VIRTIO_BLK_S_UNSUPP,
        ),
        (
            "a segment of no sectors (nothing to do)",
            VIRTIO_BLK_T_WRITE_ZEROES,
            &[(2, 1, 0), (3, 0, 0)],
            VIRTIO_BLK_S_OK,
        ),
    ];
    let mut n = 0;
    for (what, kind, segs, want) in cases {
        let len = segments(&r, segs);
        assert_eq!(post(&r, n, kind, &[(SEGS, len)]), want, "{what}");
        n += 1;
        if want != VIRTIO_BLK_S_OK {
            assert_eq!(zeroed(&r), [] as [u64; 0], "{what}: a segment was served");
        }
    }
    assert_eq!(zeroed(&r), [2]);
    // Data that is not whole segments.
    segments(&r, &[(5, 1, 0)]);
    assert_eq!(
        post(&r, n, VIRTIO_BLK_T_DISCARD, &[(SEGS, 24)]),
        VIRTIO_BLK_S_IOERR
    );
}

#[test]
fn guest_addresses_at_the_top_of_the_address_space_are_errors_not_overflows() {
    let r = zero_rig();
    let top = u64::MAX - 7;
    assert_eq!(
        post(&r, 0, VIRTIO_BLK_T_DISCARD, &[(top, 16)]),
        VIRTIO_BLK_S_IOERR,
        "a segment at 2^64 - 8"
    );
    assert_eq!(
        post(&r, 1, VIRTIO_BLK_T_WRITE_ZEROES, &[(SEGS, 8), (top, 8)]),
        VIRTIO_BLK_S_IOERR,
        "a segment's second half at 2^64 - 8"
    );
    // The header itself up there.
    let ring = ring(&r);
    ring.set_desc(16, top, 16, NEXT, 17);
    ring.set_desc(17, STATUS, 1, WRITE, 0);
    ring.post(16);
    r.kick.write(1).unwrap();
    r.handler.handle(0, false);
    assert_eq!(ring.used_idx(), 3);
    assert_eq!(
        r.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_IOERR as u8
    );
}
