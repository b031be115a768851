//! Identity resolution: match department records to register members, with evidence. Pure.
