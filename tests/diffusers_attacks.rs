//! The diffusion attacks on a diffusers UNet2DModel folder with the user's own training images
//! (`--train-data`), and the sharpness score on rote's demo DDPM with planted duplicates.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use rote::diffusion::Denoiser as _;
use rote::diffusion::sample::{Sampler, generate};
use rote::job::{CancelToken, JobCtx, NullSink};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diffusers")
        .join(name)
}

/// A copy of a fixture model (the generation cache must not land in the repository).
fn model_copy(tmp: &Path, name: &str) -> PathBuf {
    let dst = tmp.join(name);
    copy_dir(&fixture(name), &dst);
    dst
}

fn save_png(path: &Path, chw: &[u8], c: usize, s: usize) {
    let mut img = image::RgbImage::new(s as u32, s as u32);
    for y in 0..s {
        for x in 0..s {
            let px = |k: usize| chw[(k.min(c - 1) * s + y) * s + x];
            img.put_pixel(x as u32, y as u32, image::Rgb([px(0), px(1), px(2)]));
        }
    }
    img.save(path).unwrap();
}

fn rote(args: &[&str]) -> std::process::Output {
    rote_in(Path::new("."), args, &[])
}

/// `rote args more` run in `cwd` (where loose models' results go).
fn rote_in(cwd: &Path, args: &[&str], more: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rote"))
        .current_dir(cwd)
        .args(args)
        .args(more)
        .output()
        .unwrap()
}

/// `rote extract MODEL more` with the planted folder's settings (6 generations, DDIM 4 steps),
/// checked to succeed and to find exactly the planted copies.
fn extract_finds_planted(model: &Path, more: &[&str]) {
    let args = [
        "extract",
        model.to_str().unwrap(),
        "--samples",
        "6",
        "--steps",
        "4",
        "--cpu",
        "--json",
    ];
    let out = rote_in(Path::new("."), &args, more);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_planted_found(&serde_json::from_slice(&out.stdout).unwrap());
}

/// An image folder holding three of the model's first six generations (DDIM, 4 steps, seed 0),
/// the first of them twice, among twelve noise images.
fn planted_folder(model_dir: &Path, tmp: &Path) -> PathBuf {
    let model = rote::diffusion::DiffusersModel::load(model_dir, &Device::Cpu).unwrap();
    let [c, s, _] = model.shape();
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let gens = generate(&model, 6, 0, Sampler::Ddim { steps: 4, eta: 0.0 }, 8, 255, &ctx).unwrap();
    let folder = tmp.join("train");
    let class = folder.join("all");
    std::fs::create_dir_all(&class).unwrap();
    for (k, g) in gens.iter().take(3).enumerate() {
        save_png(&class.join(format!("gen{k}.png")), g, c, s);
    }
    save_png(&class.join("gen0-again.png"), &gens[0], c, s);
    let mut noise = vec![0u8; c * s * s];
    for k in 0..12u64 {
        let mut r = rote::diffusion::model::NormalStream::new(99, k);
        let mut v = vec![0f32; noise.len()];
        r.fill(&mut v);
        noise
            .iter_mut()
            .zip(&v)
            .for_each(|(p, z)| *p = (128.0 + 60.0 * z).clamp(0.0, 255.0) as u8);
        save_png(&class.join(format!("noise{k:02}.png")), &noise, c, s);
    }
    folder
}

/// Generations 0-2 are in the folder, 3-5 are not (seeded noise through a UNet gives six
/// distinct images); the twice-present one is the duplicated training image.
fn assert_planted_found(v: &serde_json::Value) {
    assert_eq!(v["n_samples"], 6);
    assert_eq!(v["n_extracted"], 3, "{v}");
    assert_eq!(v["unique_train_extracted"], 3, "{v}");
    assert_eq!(
        v["planted_dup_extracted_frac"], 1.0,
        "the twice-present image: {v}"
    );
    assert_eq!(v["singleton_extracted_frac"].as_f64().unwrap(), 2.0 / 14.0, "{v}");
}

/// `rote extract MODEL --train-data FOLDER` on a diffusers model: exactly the planted copies of
/// its generations are extracted from the user's image folder.
#[test]
fn extract_finds_planted_copies_in_a_users_image_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = model_copy(tmp.path(), "cifar");
    let folder = planted_folder(&model_dir, tmp.path());
    extract_finds_planted(&model_dir, &["--train-data", folder.to_str().unwrap()]);
}

/// `rote import-diffusers` puts the model and its training set into a study: extraction then
/// needs no --train-data, and the report has its section.
#[test]
fn imported_diffusers_model_joins_the_study() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = model_copy(tmp.path(), "cifar");
    let folder = planted_folder(&model_dir, tmp.path());
    let study = tmp.path().join("study");
    let (m, f, st) = (
        model_dir.to_str().unwrap(),
        folder.to_str().unwrap(),
        study.to_str().unwrap(),
    );
    let out = rote(&["import-diffusers", m, "--train-data", f, "--study", st, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["n_train"].as_u64(), v["n_duplicated"].as_u64()),
        (Some(16), Some(2))
    );
    let (cards, errors) = rote::diffusion::list_models(&study);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(cards.len(), 1);
    let imported = study.join("diffusion/cifar");
    extract_finds_planted(&imported, &[]);
    // One-model inpainting of the study model: its members against other images.
    let held = tmp.path().join("held");
    std::fs::create_dir_all(held.join("all")).unwrap();
    for k in 0..3u8 {
        save_png(
            &held.join(format!("all/h{k}.png")),
            &vec![40 * k; 3 * 16 * 16],
            3,
            16,
        );
    }
    let inpaint = [
        "inpaint",
        "--in-model",
        imported.to_str().unwrap(),
        "--count",
        "4",
        "--steps",
        "4",
    ];
    let out = rote_in(
        Path::new("."),
        &inpaint,
        &["--samples", "1", "--heldout-data", held.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The GUI's listing of the study's diffusion models carries the saved one-model attack.
    let cancel = CancelToken::new();
    let listed =
        rote::ui::diffusion_jobs::load_models(&study, &[], &JobCtx::new(&cancel, &NullSink)).unwrap();
    assert!(listed.errors.is_empty(), "{:?}", listed.errors);
    let members = &listed.member_inpaints["cifar"];
    assert_eq!(members.rows.iter().filter(|r| r.member).count(), 2);
    assert_eq!(members.rows.iter().filter(|r| !r.member).count(), 2);
    let report = tmp.path().join("report");
    let out = rote(&["report", st, "--out", report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(
        html.contains("Extraction: cifar"),
        "the report names the imported model"
    );
    assert!(
        html.contains("cifar, members vs held out"),
        "and its one-model inpainting"
    );
    assert!(
        !html.contains("cannot read this result"),
        "no result is unreadable"
    );
    // Importing the same folder again gives a second id; a study model cannot be imported.
    let out = rote(&["import-diffusers", m, "--train-data", f, "--study", st, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model_id"], "cifar-2");
    let out = rote(&[
        "import-diffusers",
        imported.to_str().unwrap(),
        "--train-data",
        f,
        "--study",
        st,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already belongs to a study"));
}

/// Shapes that do not fit and a diffusers folder without training data: one clear error each.
#[test]
fn diffusers_jobs_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = model_copy(tmp.path(), "cifar");
    let m = model_dir.to_str().unwrap();
    let out = rote(&["extract", m, "--samples", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--train-data") && err.contains("diffusers"), "{err}");
    let out = rote(&["extract", m, "--train-data", "digits8x8", "--samples", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3x16x16") && err.contains("1x8x8"), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "{err}");
}

/// Jeon et al.'s sharpness on the shipped 8x8 DDPM with ten images planted 32 times: the
/// planted duplicates are sharper than the single training images.
#[test]
fn sharpness_separates_planted_duplicates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/diffusion/ddpm-digits-dup32");
    let model = rote::diffusion::Ddpm::load(&dir, &Device::Cpu).unwrap();
    let ds = rote::data::load("digits8x8").unwrap();
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let cfg = rote::diffusion::sharpness::SharpnessConfig::default();
    let rep = rote::diffusion::sharpness::training_sharpness(&model, &dir, &ds, &cfg, 90, &ctx).unwrap();
    assert_eq!(rep.duplicated.len(), 10);
    assert_eq!(rep.rows.len(), 90);
    let auc = rep.auc_duplicated.unwrap();
    assert!(
        auc >= 0.9,
        "AUC {auc}: {:?} vs {:?}",
        rep.mean_duplicated,
        rep.mean_single
    );
    assert!(rep.mean_duplicated.unwrap() > rep.mean_single.unwrap() + 0.1);
    // The same images and seed give the same figures.
    let again = rote::diffusion::sharpness::training_sharpness(&model, &dir, &ds, &cfg, 90, &ctx).unwrap();
    assert_eq!(again.rows, rep.rows);
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// One model, members against held-out images: the LOSS attack on rote's demo DDPM finds its
/// training images (card) among the rest of the data set, and a diffusers folder takes NPY files.
#[test]
fn one_model_membership_from_members_and_heldout_images() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/diffusion/ddpm-digits-dup32");
    let dir = tmp.path().join("study/diffusion/ddpm-digits-dup32");
    copy_dir(&src, &dir);
    let d = dir.to_str().unwrap();
    let out = rote(&[
        "mia-diffusion",
        d,
        "--timesteps",
        "50",
        "--count",
        "150",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_images"], 300);
    let auc = v["per_t"][0]["attacks"]["loss"]["auc"].as_f64().unwrap();
    assert!(auc > 0.62, "members vs held-out LOSS AUC {auc}");

    let model_dir = model_copy(tmp.path(), "dummy");
    let model = rote::diffusion::DiffusersModel::load(&model_dir, &Device::Cpu).unwrap();
    let [c, s, _] = model.shape();
    let npy = |name: &str, n: usize, fill: u8| {
        let p = tmp.path().join(name);
        let data: Vec<u8> = (0..n * c * s * s)
            .map(|k| fill.wrapping_add((k % 97) as u8))
            .collect();
        std::fs::write(&p, rote::data::npy_bytes("|u1", &[n, c, s, s], &data)).unwrap();
        p
    };
    let (a, b) = (npy("members.npy", 5, 0), npy("heldout.npy", 4, 40));
    let m = model_dir.to_str().unwrap();
    let args = [
        "--train-data",
        a.to_str().unwrap(),
        "--heldout-data",
        b.to_str().unwrap(),
    ];
    let cwd = tmp.path();
    let mia = [
        "mia-diffusion",
        m,
        "--timesteps",
        "10,100",
        "--draws",
        "1",
        "--json",
    ];
    let out = rote_in(cwd, &mia, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_images"], 9);
    assert_eq!(v["per_t"].as_array().unwrap().len(), 2);
    assert!(
        cwd.join("rote-results/dummy/mia-diffusion-members.json")
            .is_file()
    );
    let inpaint = [
        "inpaint",
        "--in-model",
        m,
        "--count",
        "4",
        "--steps",
        "5",
        "--samples",
        "1",
        "--json",
    ];
    let out = rote_in(cwd, &inpaint, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["n_members"].as_u64(), v["n_heldout"].as_u64()),
        (Some(2), Some(2))
    );
    // Without held-out images a diffusers model has nothing to compare its members with.
    let out = rote(&["mia-diffusion", m, "--train-data", a.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--heldout-data"));
}
