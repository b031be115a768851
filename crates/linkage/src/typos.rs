//! Typing mistakes in an identity number, for the tests that make noisy records.

use rand::Rng;

/// `id` with one of its first 17 digits raised by one (9 becomes 0).
pub(crate) fn digit_changed(rng: &mut impl Rng, id: &str) -> Option<String> {
    let mut b = id.as_bytes().to_vec();
    let i = rng.gen_range(0..17);
    b[i] = if b[i] == b'9' { b'0' } else { b[i] + 1 };
    String::from_utf8(b).ok()
}

/// `id` with two neighbouring digits of its first 17 swapped.
pub(crate) fn digits_swapped(rng: &mut impl Rng, id: &str) -> Option<String> {
    let mut b = id.as_bytes().to_vec();
    let i = rng.gen_range(0..16);
    b.swap(i, i + 1);
    String::from_utf8(b).ok()
}
