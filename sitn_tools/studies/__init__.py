def write_results(report_dir: str, text: str) -> None:
    """Writes a study's table to `<report_dir>/results.md` and prints it."""
    import os

    os.makedirs(report_dir, exist_ok=True)
    with open(os.path.join(report_dir, "results.md"), "w") as f:
        f.write(text)
    print(text)
