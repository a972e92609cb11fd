//! Every card rote loads from JSON: model card, diffusion card, language-model card, SSL card,
//! diffusers' UNet and scheduler configs.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = Path::new("models/m/card.json");
    let _ = rote::model::ModelCard::from_json(p, text);
    let _ = rote::diffusion::DiffusionCard::from_json(p, text);
    let _ = rote::canary::card::LmCard::from_json(p, text);
    let _ = rote::ssl::SslCard::from_json(p, text);
    let _ = rote::diffusion::diffusers_unet::DiffusersUnetConfig::from_json(p, text);
    let _ = rote::diffusion::diffusers_sched::DiffusersScheduler::from_json(p, text);
});
