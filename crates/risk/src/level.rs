//! Warning levels (the type lives in `doudi_model::assessment`).

pub use doudi_model::assessment::Level;
