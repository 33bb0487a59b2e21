//! Ladder planning: which rungs to make below a source, never upscaling.

use std::sync::Arc;

use streaming_core::config::RungConfig;
use streaming_core::hub::RenditionSpec;

/// The rungs for a `width`×`height` source at `fps`: every configured rung
/// strictly below the source height, scaled to the source's aspect ratio
/// (even dimensions), frame rate capped by the rung's `max_fps`.
pub fn plan(rungs: &[RungConfig], width: u32, height: u32, fps: f64) -> Vec<RenditionSpec> {
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let mut out: Vec<RenditionSpec> = rungs
        .iter()
        .filter(|r| r.height >= 2 && r.height < height)
        .map(|r| {
            let h = r.height & !1;
            let w = ((u64::from(width) * u64::from(h) / u64::from(height)) as u32 + 1) & !1;
            let fps = if fps > 0.0 {
                fps.min(r.max_fps)
            } else {
                r.max_fps
            };
            RenditionSpec {
                name: Arc::from(r.name.as_str()),
                width: w.max(2),
                height: h,
                video_kbps: r.video_kbps,
                frame_rate: fps,
            }
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.height));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use streaming_core::config::TranscodeConfig;

    fn names(v: &[RenditionSpec]) -> Vec<&str> {
        v.iter().map(|r| &*r.name).collect()
    }

    #[test]
    fn never_upscales() {
        let rungs = TranscodeConfig::default().rungs;
        assert_eq!(names(&plan(&rungs, 1920, 1080, 30.0)), ["720p", "480p"]);
        assert_eq!(names(&plan(&rungs, 1280, 720, 30.0)), ["480p"]);
        assert_eq!(
            names(&plan(&rungs, 2560, 1440, 60.0)),
            ["1080p", "720p", "480p"]
        );
        assert!(plan(&rungs, 640, 360, 30.0).is_empty());
        assert!(plan(&rungs, 0, 0, 30.0).is_empty());
    }

    #[test]
    fn keeps_aspect_ratio_and_caps_fps() {
        let rungs = TranscodeConfig::default().rungs;
        let p = plan(&rungs, 2560, 1440, 60.0);
        assert_eq!((p[0].width, p[0].height), (1920, 1080));
        assert_eq!((p[2].width, p[2].height), (854, 480));
        assert_eq!(p[0].frame_rate, 30.0);
        let tall = plan(&rungs, 1080, 1920, 30.0);
        assert_eq!((tall[0].width, tall[0].height), (608, 1080));
        assert_eq!(plan(&rungs, 1920, 1080, 25.0)[0].frame_rate, 25.0);
    }
}
