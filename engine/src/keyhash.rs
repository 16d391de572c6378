//! The one hash of a key. It decides the shard (`hash % shards`) and, by its
//! top bits, the page inside the shard. It is seeded with a constant so that
//! it is the same in every process: page identities in snapshots and the
//! routing of logged commands depend on it.

use xxhash_rust::xxh3::xxh3_64;

#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    xxh3_64(key)
}

#[inline]
pub fn shard_of_hash(hash: u64, shards: usize) -> usize {
    (hash % shards as u64) as usize
}

#[inline]
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    shard_of_hash(hash_key(key), shards)
}
