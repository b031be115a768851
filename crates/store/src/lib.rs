//! sqlx store: SQLite (embedded default), migrations, batch writes, source positions.
