//! The catalogue's committed files under `tests/bad_inputs/files/`: `generate` writes every one
//! that is missing (data sets in every supported format, model folders, studies, cards, corpora,
//! pickles, diffusers folders), byte for byte the same on every run.

use std::path::Path;

use super::cards;
use super::files_dir;
use super::formats::{
    PICKLE, card_json, good_weights, gz, idx_bytes, npy_bytes, png, png_claiming, safetensors_of,
    softmax_card, weights, zip_one,
};

/// Writes `bytes` to `files/<rel>` unless the file is already there.
pub(super) fn put(rel: &str, bytes: &[u8]) {
    let p = files_dir().join(rel);
    if p.exists() {
        return;
    }
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
}

/// Writes every committed file of the catalogue that is missing.
pub(super) fn generate() {
    // IDX (MNIST format).
    let px: Vec<u8> = (0..10 * 16).map(|k| (k * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..10).map(|k| k % 2).collect();
    put(
        "idx/truncated-images-idx3-ubyte",
        &idx_bytes(8, &[10, 4, 4], &px[..50]),
    );
    put("idx/truncated-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put("idx/badmagic-images-idx3-ubyte", b"GIF89a\x04\x00\x04\x00garbage");
    put("idx/badmagic-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put(
        "idx/huge-images-idx3-ubyte",
        &idx_bytes(8, &[1 << 31, 1 << 31, 1], &px[..16]),
    );
    put("idx/huge-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put(
        "idx/overclaim-images-idx3-ubyte",
        &idx_bytes(8, &[60000, 256, 256], &px[..16]),
    );
    put(
        "idx/overclaim-labels-idx1-ubyte",
        &idx_bytes(8, &[60000], &labels),
    );
    put("idx/count-images-idx3-ubyte", &idx_bytes(8, &[10, 4, 4], &px));
    put("idx/count-labels-idx1-ubyte", &idx_bytes(8, &[9], &labels[..9]));
    put("idx/nolabels-images-idx3-ubyte", &idx_bytes(8, &[10, 4, 4], &px));
    put(
        "idx/float-images-idx3-ubyte",
        &idx_bytes(0x0d, &[10, 4, 4], &[0; 640]),
    );
    put("idx/float-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put("idx/ndims-images-idx3-ubyte", &idx_bytes(8, &[1; 7], &[0]));
    put("idx/ndims-labels-idx1-ubyte", &idx_bytes(8, &[1], &[0]));
    put(
        "idx/channels-images-idx4-ubyte",
        &idx_bytes(8, &[10, 2, 2, 4], &px),
    );
    put("idx/channels-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put("idx/empty-images-idx3-ubyte", &idx_bytes(8, &[0, 4, 4], &[]));
    put("idx/empty-labels-idx1-ubyte", &idx_bytes(8, &[0], &[]));
    put(
        "idx/gzip-images-idx3-ubyte.gz",
        b"\x1f\x8b\x08\x00garbage, not deflate",
    );
    put("idx/gzip-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));
    put(
        "idx/cut-gzip-images-idx3-ubyte.gz",
        &gz(&idx_bytes(8, &[10, 4, 4], &px))[..40],
    );
    put("idx/cut-gzip-labels-idx1-ubyte", &idx_bytes(8, &[10], &labels));

    // NPY.
    put(
        "npy/bad-header.npy",
        b"\x93NUMPY\x01\x00\x20\x00{'descr': garbage }          \n",
    );
    put("npy/complex.npy", &npy_bytes("<c8", "(2, 4, 4)", &[0; 256]));
    put(
        "npy/huge.npy",
        &npy_bytes("|u1", "(2147483648, 2147483648)", &px[..16]),
    );
    put("npy/truncated.npy", &npy_bytes("|u1", "(10, 4, 4)", &px[..20]));
    put("npy/flat.npy", &npy_bytes("|u1", "(10, 16)", &px));
    put("npy/five-channels.npy", &npy_bytes("|u1", "(2, 4, 4, 5)", &px));
    put("npy/count.npy", &npy_bytes("|u1", "(2, 4, 4)", &px[..32]));
    put("npy/count-labels.npy", &npy_bytes("<i8", "(3,)", &[0; 24]));
    put("npy/not-npy.npy", b"just some text, not an array\n");

    // CIFAR-10 binary batches.
    let mut rec = vec![3u8];
    rec.extend(std::iter::repeat_n(128u8, 3072));
    let mut partial = rec.clone();
    partial.extend_from_slice(&[1, 2, 3, 4, 5]);
    put("cifar/partial.bin", &partial);
    let mut label = rec.clone();
    label[0] = 12;
    put("cifar/label.bin", &label);
    put("cifar/empty.bin", b"");

    // Image folders.
    put("folder/corrupt-png/a/ok.png", &png(4, 4, 10));
    put("folder/corrupt-png/b/bad.png", b"\x89PNG\r\n\x1a\n\0\0garbage");
    put("folder/zero-byte/a/ok.png", &png(4, 4, 10));
    put("folder/zero-byte/b/empty.png", b"");
    put("folder/not-a-png/a/ok.png", &png(4, 4, 10));
    put(
        "folder/not-a-png/b/photo.jpg",
        b"<html>this was saved from a browser</html>\n",
    );
    put("folder/huge-png/a/ok.png", &png(4, 4, 10));
    put("folder/huge-png/b/huge.png", &png_claiming(100_000, 100_000));
    put("folder/no-classes/README.txt", b"No class subfolders here.\n");
    put("folder/no-images/a/notes.txt", b"Not an image.\n");
    put("folder/no-images/b/notes.txt", b"Not an image.\n");
    for k in 0..3u8 {
        put(&format!("folder/one-class/only/{k}.png"), &png(4, 4, 10 + 40 * k));
    }

    // Text corpora.
    put("text/empty.txt", b"");
    put("text/short.txt", b"Too short to train on.\n");
    put("text/latin1.txt", b"caf\xe9 au lait, cr\xe8me br\xfbl\xe9e\n");

    // Model folders: a softmax regression of the 8x8 digits, broken in one way each.
    let card = softmax_card();
    let good = good_weights();
    let models: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "truncated-weights",
            card_json(&card),
            good[..good.len() / 2].to_vec(),
        ),
        ("header-too-large", card_json(&card), {
            let mut b = (1u64 << 40).to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
        ("header-not-json", card_json(&card), {
            let mut b = 16u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"not json at all!");
            b
        }),
        ("nan-weights", card_json(&card), {
            let mut w: Vec<f32> = (0..640).map(|k| (k % 7) as f32 * 0.01).collect();
            w[17] = f32::NAN;
            weights(w, vec![10, 64])
        }),
        ("inf-weights", card_json(&card), {
            let mut w: Vec<f32> = (0..640).map(|k| (k % 7) as f32 * 0.01).collect();
            w[3] = f32::INFINITY;
            weights(w, vec![10, 64])
        }),
        (
            "wrong-shape",
            card_json(&card),
            weights(vec![0.0; 630], vec![10, 63]),
        ),
        (
            "missing-tensor",
            card_json(&card),
            safetensors_of(&[("out.weight", vec![0.0; 640], vec![10, 64])]),
        ),
        (
            "pickle-zip",
            card_json(&card),
            zip_one("archive/data.pkl", PICKLE),
        ),
        ("pickle-raw", card_json(&card), PICKLE.to_vec()),
        ("card-invalid-json", b"{ \"id\": \"x\", ".to_vec(), good.clone()),
        (
            "card-wrong-types",
            {
                let mut v = serde_json::to_value(&card).unwrap();
                v["spec"]["n_classes"] = serde_json::json!("ten");
                serde_json::to_vec_pretty(&v).unwrap()
            },
            good.clone(),
        ),
        (
            "card-unknown-family",
            {
                let mut v = serde_json::to_value(&card).unwrap();
                v["spec"]["family"] = serde_json::json!("transformer");
                serde_json::to_vec_pretty(&v).unwrap()
            },
            good.clone(),
        ),
        (
            "card-index-outside",
            {
                let mut c = card.clone();
                c.train_indices.push(5000);
                card_json(&c)
            },
            good.clone(),
        ),
    ];
    for (name, card_bytes, weight_bytes) in models {
        put(&format!("model/{name}/card.json"), &card_bytes);
        put(&format!("model/{name}/weights.safetensors"), &weight_bytes);
    }
    put("model/no-card/weights.safetensors", &good);
    put("model/pytorch-only/card.json", &card_json(&card));
    put(
        "model/pytorch-only/pytorch_model.pt",
        &zip_one("archive/data.pkl", PICKLE),
    );
    put("model/resnet.pth", &zip_one("resnet/data.pkl", PICKLE));

    // Data sets that are pickles.
    put("data/tensors.pt", &zip_one("tensors/data.pkl", PICKLE));
    put("data/images.pkl", PICKLE);

    // Studies and other cards.
    put("study/invalid-json/study.json", b"{ \"format\": 1, \"name\": ");
    put("study/wrong-types/study.json", b"{ \"format\": \"one\", \"name\": \"s\", \"description\": \"\", \"created_by\": \"\", \"datasets\": [] }\n");
    put("study/no-manifest/README.txt", b"A folder without study.json.\n");
    put(
        "lm-study/lm/bad-card/card.json",
        b"{ \"id\": \"lm\", \"vocab\": 12 }\n",
    );
    put("lm-study/lm/bad-card/weights.safetensors", b"");
    put("lm-study/lm/char-lstm.pt", &zip_one("char-lstm/data.pkl", PICKLE));
    put("ddpm-study/diffusion/unet.pth", PICKLE);
    put("ssl-study/ssl/encoder.pth", &zip_one("encoder/data.pkl", PICKLE));
    put("ddpm-study/diffusion/bad-card/card.json", b"[1, 2, 3]\n");
    put("ddpm-study/diffusion/bad-card/weights.safetensors", b"");

    // diffusers UNet2DModel folders (`rote sample`): a pickle only, an unsupported block, a
    // scheduler rote does not implement, another model's weights.
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers");
    let read = |m: &str, f: &str| std::fs::read(fx.join(m).join(f)).unwrap();
    put("diffusers/pickle-only/config.json", &read("dummy", "config.json"));
    put(
        "diffusers/pickle-only/diffusion_pytorch_model.bin",
        &zip_one("archive/data.pkl", PICKLE),
    );
    let cfg = String::from_utf8(read("dummy", "config.json")).unwrap();
    put(
        "diffusers/cross-attention/config.json",
        cfg.replacen("\"AttnDownBlock2D\"", "\"CrossAttnDownBlock2D\"", 1)
            .as_bytes(),
    );
    put(
        "diffusers/cross-attention/diffusion_pytorch_model.safetensors",
        &read("dummy", "diffusion_pytorch_model.safetensors"),
    );
    for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
        put(&format!("diffusers/cosine-betas/{f}"), &read("cifar", f));
    }
    let sched = String::from_utf8(read("cifar", "scheduler_config.json")).unwrap();
    put(
        "diffusers/cosine-betas/scheduler_config.json",
        sched.replace("\"linear\"", "\"squaredcos_cap_v2\"").as_bytes(),
    );
    put(
        "diffusers/other-weights/config.json",
        &read("dummy", "config.json"),
    );
    put(
        "diffusers/other-weights/diffusion_pytorch_model.safetensors",
        &read("cifar", "diffusion_pytorch_model.safetensors"),
    );

    // A diffusers model given training images of another size; a study's imported diffusers
    // model (card format "diffusers") whose config.json is gone.
    for f in [
        "config.json",
        "scheduler_config.json",
        "diffusion_pytorch_model.safetensors",
    ] {
        put(&format!("diffusers/colour-8x8/{f}"), &read("dummy", f));
    }
    let card = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/diffusion/ddpm-digits-dup32/card.json"),
    )
    .unwrap();
    put(
        "ddpm-study/diffusion/imported-no-config/card.json",
        card.replacen('{', "{\n  \"format\": \"diffusers\",", 1)
            .as_bytes(),
    );

    // Broken model folders of every kind and zoo records.
    cards::generate();
}
