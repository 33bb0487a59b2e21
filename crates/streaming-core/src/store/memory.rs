//! [`MemoryStore`]: the segment store in this process's memory (one machine,
//! the embedded default). Std locks are held only for map operations, never
//! across `.await`; readers clone `Bytes` (a reference count), never data.
//! The bytes it holds are kept in a gauge (`streaming_store_bytes`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;
use uuid::Uuid;

use super::{Generation, Key, Object, Progress, SegmentStore, StreamSummary};
use crate::metrics::Gauge;

struct Entry {
    generation: Generation,
    objects: RwLock<HashMap<Key, Object>>,
    /// Set (under the `objects` write lock) when the entry left the store
    /// and its bytes left the gauge: a late write changes nothing.
    gone: AtomicBool,
    summary: RwLock<Option<Arc<StreamSummary>>>,
    progress: Mutex<HashMap<Arc<str>, watch::Sender<Progress>>>,
}

impl Entry {
    /// Wakes every waiter: this broadcast's media will not grow any more.
    fn close(&self) {
        for tx in lock(&self.progress).values() {
            tx.send_modify(|p| p.ended = true);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rendition_of(key: &Key) -> Option<&str> {
    match key {
        Key::Init { rendition, .. }
        | Key::Part { rendition, .. }
        | Key::Segment { rendition, .. }
        | Key::Playlist { rendition, .. } => Some(rendition),
        Key::Master | Key::Mpd => None,
    }
}

/// Every stream's media in memory, by stream id.
#[derive(Default)]
pub struct MemoryStore {
    streams: RwLock<HashMap<Uuid, Arc<Entry>>>,
    next_generation: AtomicU64,
    /// Bytes of every object held (data lengths; a buffer shared by two
    /// objects counts twice).
    bytes: Gauge,
}

fn sum_bytes(objects: &HashMap<Key, Object>) -> i64 {
    objects.values().map(|o| o.data.len() as i64).sum()
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that keeps the bytes it holds in `bytes` (the
    /// `streaming_store_bytes` gauge of [`crate::metrics::Metrics::store_bytes`]).
    pub fn with_bytes_gauge(bytes: Gauge) -> Self {
        Self {
            bytes,
            ..Self::default()
        }
    }

    /// Bytes held by every stream's objects now.
    pub fn total_bytes(&self) -> i64 {
        self.bytes.get()
    }

    fn entry(&self, stream: Uuid) -> Option<Arc<Entry>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stream)
            .cloned()
    }

    /// The entry of `stream` if `generation` is still its broadcast.
    fn current(&self, stream: Uuid, generation: Generation) -> Option<Arc<Entry>> {
        self.entry(stream).filter(|e| e.generation == generation)
    }

    /// Bytes held by a stream's objects (for tests and memory reports).
    pub fn stored_bytes(&self, stream: Uuid) -> usize {
        self.entry(stream).map_or(0, |e| {
            e.objects
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .map(|o| o.data.len())
                .sum()
        })
    }
}

impl MemoryStore {
    /// Takes a whole entry's bytes off the gauge (the entry leaves the map;
    /// a writer still holding it can no longer reach it through `current`).
    fn forget(&self, e: &Entry) {
        let objects = e.objects.write().unwrap_or_else(|p| p.into_inner());
        if !e.gone.swap(true, Ordering::Relaxed) {
            self.bytes.dec_by(sum_bytes(&objects));
        }
    }
}

impl SegmentStore for MemoryStore {
    fn open(&self, stream: Uuid, _now_ms: i64) -> Generation {
        let generation = Generation(self.next_generation.fetch_add(1, Ordering::Relaxed) + 1);
        let entry = Arc::new(Entry {
            generation,
            objects: RwLock::default(),
            gone: AtomicBool::new(false),
            summary: RwLock::default(),
            progress: Mutex::default(),
        });
        let old = self
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream, entry);
        if let Some(old) = old {
            self.forget(&old);
            old.close();
        }
        generation
    }

    fn put(&self, stream: Uuid, generation: Generation, key: Key, object: Object) {
        if let Some(e) = self.current(stream, generation) {
            let added = object.data.len() as i64;
            let mut objects = e.objects.write().unwrap_or_else(|p| p.into_inner());
            if e.gone.load(Ordering::Relaxed) {
                return;
            }
            let replaced = objects.insert(key, object);
            self.bytes
                .inc_by(added - replaced.map_or(0, |o| o.data.len() as i64));
        }
    }

    fn delete(&self, stream: Uuid, generation: Generation, key: &Key) {
        if let Some(e) = self.current(stream, generation) {
            let mut objects = e.objects.write().unwrap_or_else(|p| p.into_inner());
            if e.gone.load(Ordering::Relaxed) {
                return;
            }
            if let Some(o) = objects.remove(key) {
                self.bytes.dec_by(o.data.len() as i64);
            }
        }
    }

    fn set_progress(&self, stream: Uuid, generation: Generation, rendition: &str, p: Progress) {
        let Some(e) = self.current(stream, generation) else {
            return;
        };
        let mut progress = lock(&e.progress);
        match progress.get(rendition) {
            Some(tx) => {
                tx.send_if_modified(|old| {
                    let changed = *old != p;
                    *old = p;
                    changed
                });
            }
            None => {
                progress.insert(rendition.into(), watch::channel(p).0);
            }
        }
    }

    fn remove_rendition(&self, stream: Uuid, generation: Generation, rendition: &str) {
        let Some(e) = self.current(stream, generation) else {
            return;
        };
        let mut removed = 0;
        let mut objects = e.objects.write().unwrap_or_else(|p| p.into_inner());
        if e.gone.load(Ordering::Relaxed) {
            return;
        }
        objects.retain(|k, o| {
            let keep = rendition_of(k) != Some(rendition);
            if !keep {
                removed += o.data.len() as i64;
            }
            keep
        });
        drop(objects);
        self.bytes.dec_by(removed);
        if let Some(tx) = lock(&e.progress).remove(rendition) {
            tx.send_modify(|p| p.ended = true);
        }
    }

    fn set_summary(&self, stream: Uuid, generation: Generation, summary: Arc<StreamSummary>) {
        if let Some(e) = self.current(stream, generation) {
            *e.summary.write().unwrap_or_else(|p| p.into_inner()) = Some(summary);
        }
    }

    fn remove(&self, stream: Uuid, generation: Generation) -> bool {
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        if streams
            .get(&stream)
            .is_some_and(|e| e.generation == generation)
        {
            if let Some(e) = streams.remove(&stream) {
                self.forget(&e);
                e.close();
            }
            true
        } else {
            false
        }
    }

    fn get(&self, stream: Uuid, key: &Key) -> Option<Object> {
        self.entry(stream)?
            .objects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn summary(&self, stream: Uuid) -> Option<Arc<StreamSummary>> {
        self.entry(stream)?
            .summary
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn progress(&self, stream: Uuid, rendition: &str) -> Option<watch::Receiver<Progress>> {
        let e = self.entry(stream)?;
        let progress = lock(&e.progress);
        progress.get(rendition).map(watch::Sender::subscribe)
    }

    fn streams(&self) -> Vec<Uuid> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PartRef, WaitOutcome, wait_for};
    use bytes::Bytes;
    use std::time::Duration;

    fn obj(s: &'static str) -> Object {
        Object {
            data: Bytes::from_static(s.as_bytes()),
            modified_ms: 1,
            etag: "\"x\"".into(),
        }
    }

    fn part(msn: u64, part: u32) -> Key {
        Key::Part {
            rendition: "source".into(),
            msn,
            part,
        }
    }

    #[test]
    fn objects_live_under_keys_of_the_current_broadcast() {
        let store = MemoryStore::new();
        let id = Uuid::new_v4();
        let g1 = store.open(id, 0);
        store.put(id, g1, part(1, 0), obj("p10"));
        store.put(id, g1, Key::Master, obj("master"));
        assert_eq!(store.get(id, &part(1, 0)).unwrap().data, "p10");
        assert_eq!(store.stored_bytes(id), 9);
        store.delete(id, g1, &part(1, 0));
        assert!(store.get(id, &part(1, 0)).is_none());

        // A newer broadcast replaces the media; the old writer is ignored.
        let g2 = store.open(id, 1);
        assert!(store.get(id, &Key::Master).is_none());
        store.put(id, g1, Key::Master, obj("stale"));
        assert!(store.get(id, &Key::Master).is_none());
        store.put(id, g2, Key::Master, obj("new"));
        assert!(!store.remove(id, g1), "a newer broadcast is kept");
        assert_eq!(store.streams(), vec![id]);
        store.set_progress(id, g2, "720p", Progress::default());
        store.put(id, g2, part(2, 0), obj("s"));
        store.put(
            id,
            g2,
            Key::Segment {
                rendition: "720p".into(),
                msn: 2,
            },
            obj("r"),
        );
        store.remove_rendition(id, g2, "720p");
        assert!(store.progress(id, "720p").is_none());
        assert!(
            store.get(id, &part(2, 0)).is_some(),
            "other renditions stay"
        );
        assert!(store.remove(id, g2));
        assert!(store.get(id, &Key::Master).is_none() && store.summary(id).is_none());
    }

    #[test]
    fn the_bytes_gauge_follows_puts_deletes_and_removals() {
        let gauge = Gauge::default();
        let store = MemoryStore::with_bytes_gauge(gauge.clone());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ga = store.open(a, 0);
        let gb = store.open(b, 0);
        store.put(a, ga, part(1, 0), obj("1234"));
        store.put(a, ga, part(1, 0), obj("12"));
        store.put(a, ga, Key::Master, obj("master"));
        store.put(b, gb, part(1, 0), obj("abc"));
        assert_eq!(gauge.get(), 2 + 6 + 3, "a replaced object counts once");
        store.delete(a, ga, &part(1, 0));
        store.delete(a, ga, &part(9, 9));
        assert_eq!(gauge.get(), 6 + 3);
        store.remove_rendition(b, gb, "source");
        assert_eq!(gauge.get(), 6);
        // A new broadcast drops the old one's bytes; a late writer of the
        // old one adds nothing.
        let ga2 = store.open(a, 1);
        store.put(a, ga, Key::Mpd, obj("stale"));
        assert_eq!(gauge.get(), 0);
        store.put(a, ga2, Key::Mpd, obj("mpd"));
        assert!(store.remove(a, ga2));
        assert_eq!((gauge.get(), store.total_bytes()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_when_the_part_lands_or_the_broadcast_is_replaced() {
        let store = Arc::new(MemoryStore::new());
        let id = Uuid::new_v4();
        let g = store.open(id, 0);
        store.set_progress(id, g, "source", Progress::default());
        let want = PartRef { msn: 3, part: 1 };
        let mut waiters = Vec::new();
        for _ in 0..100 {
            let mut rx = store.progress(id, "source").unwrap();
            waiters.push(tokio::spawn(async move {
                wait_for(&mut rx, Duration::from_secs(6), |p| p.has_part(want)).await
            }));
        }
        tokio::task::yield_now().await;
        store.set_progress(
            id,
            g,
            "source",
            Progress {
                last_part: Some(want),
                ..Progress::default()
            },
        );
        for w in waiters {
            assert!(matches!(w.await.unwrap(), WaitOutcome::Ready(_)));
        }
        let mut rx = store.progress(id, "source").unwrap();
        let waiter = tokio::spawn(async move {
            wait_for(&mut rx, Duration::from_secs(6), |p| p.has_segment(10)).await
        });
        tokio::task::yield_now().await;
        store.open(id, 5);
        assert!(matches!(waiter.await.unwrap(), WaitOutcome::Ended(_)));
    }
}
