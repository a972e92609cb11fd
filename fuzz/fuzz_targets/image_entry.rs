//! One image-folder entry: the bytes of a PNG or JPEG file (the first byte picks the extension),
//! decoded and converted as the image-folder loader does.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = match pick % 3 {
        0 => "class/0.png",
        1 => "class/0.jpg",
        _ => "class/0.jpeg",
    };
    if let Ok(img) = rote::data::decode_image_entry(Path::new(name), bytes) {
        let _ = img.color().has_color();
        // The loader brings every image to the first one's size, then to grey or RGB.
        let small = img.resize_exact(3, 2, image::imageops::FilterType::Triangle);
        let _ = small.to_luma8();
        let _ = small.to_rgb8();
    }
});
