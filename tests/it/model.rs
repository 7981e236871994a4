use super::common;
#[test]
fn model_peek() {
    let out = std::path::PathBuf::from("/tmp/qs_csv");
    for t in common::ALL_TABLES {
        let rows = common::read_table(&out, t);
        println!("== {t} {}", rows.len());
        for r in rows.iter().take(4) { println!("{r}"); }
    }
}
