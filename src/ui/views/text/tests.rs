//! The Text view: its colour map, and the view driven headlessly on a study holding the tiny GPT-2
//! fixture with a card of planted and held-out passages.

use super::*;
use strip::token_colour;

#[test]
fn token_colour_grows_with_log_probability() {
    let mut last = 0u8;
    for k in 0..=200 {
        let lp = -20.0 + 0.1 * k as f32;
        let a = token_colour(Some(lp)).a();
        assert!(a >= last, "opacity fell at ln p = {lp}");
        last = a;
    }
    assert!(token_colour(Some(0.0)).a() > 200);
    assert!(token_colour(Some(strip::LOGP_FLOOR)).a() < 30);
    assert!(token_colour(Some(-1.0)).a() > token_colour(Some(-4.0)).a());
    assert_eq!(token_colour(None), egui::Color32::TRANSPARENT);
}
