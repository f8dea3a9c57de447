"""Inversion records on the board: kind "analysis", never pooled with fine-tuning runs; the page links the grid."""
from benchmark.records import leaderboard, page, results
from benchmark.records.pooling import one_pool_per_cell
from tests.helpers.records import write_record

INVERSION = dict(task="inversion_res5", kind="analysis", iterations=3001,
                 metrics={"inversion": {"PSNR": 15.0, "SSIM": 0.4, "loss": 0.2},
                          "image:synthetic_0": {"PSNR": 15.0, "SSIM": 0.4, "loss": 0.2}})


def test_an_analysis_record_is_its_own_row_and_never_pooled_with_fine_tuning(tmp_path):
    # the same weights and the same task name: only the kind differs, and it keeps them apart
    write_record(tmp_path / "runs" / "full", name="moco", task="inversion_res5", metrics=INVERSION["metrics"])
    write_record(tmp_path / "runs" / "inv" / "inversion_res5" / "moco", name="moco", **{**INVERSION, "metrics": {
        "inversion": {"PSNR": 25.0, "SSIM": 0.8, "loss": 0.1}}})
    write_record(tmp_path / "runs" / "voc", name="moco", metrics={"bbox": {"AP": 46.0, "AP50": 70.0, "AP75": 50.0}})
    records, problems = results.gather([tmp_path / "runs"])
    assert not problems and sorted(r.kind for r in records) == ["analysis", "full", "full"]
    board = leaderboard.build(records, sort_by="voc07")
    assert sorted(r.label for r in board.rows) == ["moco", "moco [analysis]"]
    assert board.stat("moco [analysis]", "inversion_res5", "inversion/PSNR").values == (25.0,)
    assert board.stat("moco", "inversion_res5", "inversion/PSNR").values == (15.0,)
    assert board.stat("moco [analysis]", "voc07", "bbox/AP") is None
    kept, unpooled = one_pool_per_cell(records, "full")
    assert all(r.kind == "full" for r in kept) and [f.reason for f in unpooled] == [
        "a 'analysis' run, this reproduction counts 'full' runs"]


def test_the_page_links_the_inversion_grid_relatively_when_it_exists(tmp_path):
    task_dir = tmp_path / "runs" / "inversion_res5"
    write_record(task_dir / "moco", name="moco", **INVERSION)
    write_record(task_dir / "sup", name="sup", **INVERSION)
    records, _ = results.gather([tmp_path / "runs"])
    board = leaderboard.build(records)
    base = tmp_path / "board"
    assert "Feature inversion" not in page.render(board, base=base)  # no figure: no link to nothing
    (task_dir / "grid.png").write_bytes(b"\x89PNG")
    html = page.render(board, base=base)
    assert html.count('<a href="../runs/inversion_res5/grid.png">') == 1  # one figure, linked once for both rows
    assert "<h2>Feature inversion</h2>" in html and str(tmp_path) not in html.split("<h2>Feature inversion</h2>")[1]


def test_the_best_feature_loss_is_the_lowest(tmp_path):
    """tools/invert.py's loss is an error: the board marks the lowest as best, and PSNR/SSIM the highest."""
    for name, psnr, ssim, loss in (("moco", 15.0, 0.5, 0.3), ("supervised", 12.0, 0.4, 0.1)):
        write_record(tmp_path / "runs" / name, name=name, **{**INVERSION, "metrics": {
            "inversion": {"PSNR": psnr, "SSIM": ssim, "loss": loss}}})
    records, problems = results.gather([tmp_path / "runs"])
    assert not problems
    md = leaderboard.to_markdown(leaderboard.build(records))
    rows = {ln.split("|")[1].strip(): ln.split("|")[2:5] for ln in md.splitlines() if "[analysis]" in ln}
    assert [c.strip() for c in rows["moco [analysis]"]] == ["15.00 (1) ★", "0.50 (1) ★", "0.30 (1)"]
    assert [c.strip() for c in rows["supervised [analysis]"]] == ["12.00 (1)", "0.40 (1)", "0.10 (1) ★"]


def test_per_image_numbers_stay_in_the_record_and_off_the_board(tmp_path):
    """A run over many images would otherwise add three columns per image; the board shows the means."""
    per_image = {f"image:img{i:03d}": {"PSNR": 10.0 + i, "SSIM": 0.5, "loss": 0.2} for i in range(100)}
    write_record(tmp_path / "runs" / "moco", name="moco", **{**INVERSION, "metrics": {
        "inversion": {"PSNR": 15.0, "SSIM": 0.4, "loss": 0.2}, **per_image}})
    records, problems = results.gather([tmp_path / "runs"])
    assert not problems and records[0].metrics["image:img099"]["PSNR"] == 109.0  # kept in the record
    board = leaderboard.build(records)
    assert board.columns == [("inversion_res5", "inversion/PSNR"), ("inversion_res5", "inversion/SSIM"),
                             ("inversion_res5", "inversion/loss")]
    assert "img0" not in leaderboard.to_markdown(board) and "img0" not in leaderboard.to_csv(board)
