fn name() -> String {
    "ada"
}
