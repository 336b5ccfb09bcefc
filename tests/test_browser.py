"""rustmeter in a real browser: Playwright drives Chromium through JupyterLab (and Notebook
7) started from the project's install, the way a learner uses it.

- the launcher shows the rustmeter kernel with its logo; the first tutorial opens from the
  file browser and runs top to bottom, every code cell ending with its footer (charts
  decoded and of a sane size); the footer changes while a multi-second cell runs;
- footer text and chart labels meet WCAG AA contrast (4.5:1) in the light and dark themes;
- screenshots of the footer (light, dark, `:telemetry big`) and of the `:compare` table go
  to test-artifacts/browser/;
- the toolbar's stop button interrupts a running cell and the kernel is idle again;
- a notebook executed by nbclient (never signed by this server: untrusted) still shows the
  footer's text and charts after JupyterLab's sanitizer; saved here, it reopens trusted;
- Rust syntax highlighting, and Tab completion offering `HashMap`;
- Notebook 7 opens and runs the welcome notebook;
- tutorials run with Run All Cells in JupyterLab, each in a page of its own: a footer under
  every code cell, a ✗ footer exactly under the cells tagged `raises-exception`. CI runs
  the newest; `BROWSER_TUTORIALS=all` (or a comma-separated list of names) runs others.

Skips (with the reason) only when Playwright or Chromium is missing or the kernel is not
installed.
"""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from browser_helpers import CHROMIUM, chromium_unavailable_reason, start_server
from kernel_helpers import KERNEL_NAME, NOTEBOOKS, busy_loops, kernel_unavailable_reason

_skip = chromium_unavailable_reason() or kernel_unavailable_reason()
if _skip:
    pytest.skip(_skip, allow_module_level=True)

from browser_pages import (  # noqa: E402  (needs playwright, checked just above)
    CODE_CELL,
    add_cell_and_run,
    footer_of,
    images_loaded,
    kernel_status,
    menu,
    open_from_file_browser,
    screenshot,
    set_theme,
    wait_kernel_ready,
    wait_cells_done,
)
from playwright.sync_api import sync_playwright  # noqa: E402

WELCOME = "01-welcome.ipynb"
# The setup cell's `:dep tokio` compiles tokio when the dependency cache is cold (the
# test run installs with --no-prewarm): minutes on 2 busy cores, seconds when warm.
RUN_ALL_TIMEOUT = 900
CELL_TIMEOUT = 120
DISPLAY_NAME = "Rust (rustmeter)"
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def lab():
    server = start_server("lab")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab_page(browser, lab):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(lab.url("lab"))
    page.locator(".jp-LauncherCard").first.wait_for(timeout=60_000)
    yield page
    page.close()


@pytest.fixture(scope="module")
def welcome(lab_page):
    """The first tutorial opened from the file browser and run with Run › Run All Cells."""
    open_from_file_browser(lab_page, WELCOME, DISPLAY_NAME)
    started = time.monotonic()
    menu(lab_page, "Run", "Run All Cells")
    cells = lab_page.locator(f".jp-NotebookPanel:visible {CODE_CELL}")
    wait_cells_done(lab_page, cells, RUN_ALL_TIMEOUT)
    print(f"{WELCOME}: Run All Cells took {time.monotonic() - started:.1f} s")
    return lab_page


def footer_text(cell) -> str:
    footer = cell.locator(".jp-OutputArea-child").last.locator(".rustmeter-footer")
    return footer.inner_text() if footer.count() else ""


def check_footer(cell, where: str) -> str:
    """Asserts the cell's last output is a readable footer with decoded, sanely sized
    charts (if any); returns its text."""
    last = footer_of(cell)
    text = footer_text(cell)
    assert text.startswith(("✓", "✗", "■")), f"{where}: last output is not a footer: {last.inner_text()!r}"
    box = last.locator(".rustmeter-footer").bounding_box()
    assert box and box["height"] >= 8 and box["width"] >= 100, f"{where}: footer box {box}"
    # A narrow output wraps the line between fields, never inside one.
    split = last.locator(".rustmeter-footer").evaluate(
        "el => [...el.querySelectorAll('span')].filter(s => s.getClientRects().length > 1)"
        ".map(s => s.textContent)"
    )
    assert not split, f"{where}: footer fields broken across lines: {split}"
    for img in images_loaded(last):
        assert img["complete"] and img["natural"] > 0, f"{where}: chart not decoded: {img}"
        assert 20 <= img["height"] <= 200 and 2 <= img["width"] / img["height"] <= 8, (
            f"{where}: chart size not sane: {img}"
        )
    return text


def test_launcher_shows_rustmeter_with_its_logo(lab_page):
    card = lab_page.locator(f".jp-LauncherCard[data-category='Notebook'][title='{DISPLAY_NAME}']")
    assert card.count() == 1, f"no {DISPLAY_NAME!r} notebook card in the launcher"
    logo = images_loaded(card)
    assert len(logo) == 1 and logo[0]["natural"] > 0, f"logo missing or not loaded: {logo}"
    src = card.locator("img").get_attribute("src")
    assert f"/kernelspecs/{KERNEL_NAME}/logo" in src, src
    screenshot(card, "launcher-card")


def test_first_tutorial_runs_with_a_footer_under_every_cell(welcome):
    cells = welcome.locator(f".jp-NotebookPanel:visible {CODE_CELL}")
    assert cells.count() >= 5
    charts = 0
    for i in range(cells.count()):
        check_footer(cells.nth(i), f"{WELCOME} code cell {i}")
        charts += len(images_loaded(footer_of(cells.nth(i))))
    # The 1 s sleep, the busy spins and the 100 MB cell run long enough for charts.
    assert charts >= 3 * 3, f"only {charts} charts in {WELCOME}"
    sleep_cell = cells.filter(has_text="std::thread::sleep(Duration::from_secs(1))").first
    screenshot(footer_of(sleep_cell), "footer-light")


def test_footer_changes_while_a_long_cell_runs(welcome):
    cell = add_cell_and_run(
        welcome,
        "for _ in 0..40 { std::thread::sleep(Duration::from_millis(100)); }",
        wait=False,
    )
    seen: list[str] = []
    deadline = time.monotonic() + CELL_TIMEOUT
    while time.monotonic() < deadline:
        text = last_output_text(cell)
        if text.startswith("⏱") and text not in seen:
            seen.append(text)
        if text.startswith("✓"):
            break
        time.sleep(0.2)
    assert len(seen) >= 2, f"the live footer did not change while the cell ran: {seen}"
    assert all("running" in s for s in seen), seen
    check_footer(cell, "the 4 s cell")
    assert footer_text(cell).startswith("✓ ran 4."), footer_text(cell)


def test_footer_in_dark_theme_and_big(welcome):
    cells = welcome.locator(f".jp-NotebookPanel:visible {CODE_CELL}")
    sleep_cell = cells.filter(has_text="std::thread::sleep(Duration::from_secs(1))").first
    footer = footer_of(sleep_cell).locator(".rustmeter-footer")
    charts = footer_of(sleep_cell).locator(".rustmeter-charts img")
    assert charts.count() >= 3, "the 1-second sleep cell should have charts"
    for dark in (False, True):
        set_theme(welcome, dark=dark)
        try:
            theme = "dark" if dark else "light"
            ratio, said = text_contrast(footer)
            assert ratio >= WCAG_AA_TEXT, f"footer text in the {theme} theme: {said}"
            for i in range(charts.count()):
                ratio, said = chart_label_contrast(charts.nth(i))
                assert ratio >= WCAG_AA_TEXT, f"chart {i} label in the {theme} theme: {said}"
            if dark:
                screenshot(footer_of(sleep_cell), "footer-dark")
        finally:
            set_theme(welcome, dark=False)

    normal_size = font_px(footer_of(sleep_cell).locator(".rustmeter-footer"))
    add_cell_and_run(welcome, ":telemetry big")
    cell = add_cell_and_run(welcome, "std::thread::sleep(Duration::from_millis(800));")
    check_footer(cell, "the :telemetry big cell")
    big = footer_of(cell).locator(".rustmeter-footer")
    assert font_px(big) >= 1.4 * normal_size, (font_px(big), normal_size)
    screenshot(footer_of(cell), "footer-big")
    add_cell_and_run(welcome, ":telemetry full")


def test_tasks_and_a_stall_in_the_footer(welcome):
    cell = add_cell_and_run(
        welcome,
        "let mut set = tokio::task::JoinSet::new(); "
        "for _ in 0..500 { set.spawn(tokio::time::sleep(Duration::from_millis(400))); } "
        "set.spawn(async { std::thread::sleep(Duration::from_millis(300)) }); "
        "while set.join_next().await.is_some() {}",
    )
    text = check_footer(cell, "the tasks cell")
    assert "tasks 0 ▸ 501 max ▸ 0 on" in text and "(runtime: " in text, text
    assert "⚠ a task held a worker for 0.3" in text and "(spawned at line 1)" in text, text
    charts = footer_of(cell).locator("img").evaluate_all("imgs => imgs.map(i => i.title)")
    assert len(charts) == 4 and any(t.startswith("tasks alive") for t in charts), charts
    screenshot(footer_of(cell), "footer-tasks")


def test_compare_table(welcome):
    add_cell_and_run(welcome, ":label nap\nstd::thread::sleep(Duration::from_millis(400));")
    add_cell_and_run(welcome, ":label spin\nspin(Duration::from_millis(400))")
    cell = add_cell_and_run(welcome, ":compare nap spin")
    table = cell.locator("table.rustmeter-compare")
    assert table.count() == 1, f":compare shows no table: {cell.locator('.jp-OutputArea').inner_text()!r}"
    text = table.inner_text()
    assert "nap" in text and "spin" in text and "run" in text, text
    assert "tasks max" in text and "stalls" in text, f"the runtime's columns: {text}"
    bars = table.evaluate("t => [...t.querySelectorAll('td div')].map(d => d.getBoundingClientRect().width)")
    assert bars and all(w >= 1 for w in bars), f"compare bars not drawn: {bars}"
    screenshot(table, "compare-table")


def test_stop_button_interrupts_a_running_cell(welcome):
    cell = add_cell_and_run(welcome, "std::thread::sleep(Duration::from_secs(300));", wait=False)
    deadline = time.monotonic() + CELL_TIMEOUT
    while not last_output_text(cell).startswith("⏱"):
        assert time.monotonic() < deadline, f"no live footer: {last_output_text(cell)!r}"
        time.sleep(0.2)
    welcome.locator(
        ".jp-NotebookPanel:visible jp-button[data-command='notebook:interrupt-kernel']"
    ).click()
    deadline = time.monotonic() + 30
    while kernel_status(welcome) != "idle" or "[*]" in cell.locator(".jp-InputArea-prompt").inner_text():
        assert time.monotonic() < deadline, f"kernel still {kernel_status(welcome)!r} 30 s after ■"
        time.sleep(0.2)
    # A failed cell's footer is the last line of its error.
    error = footer_of(cell).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert error.count() == 1, f"last output is not the error: {last_output_text(cell)!r}"
    lines = error.inner_text().strip().splitlines()
    assert "interrupted" in lines[0] and lines[-1].startswith("■ interrupted at"), lines
    after = add_cell_and_run(welcome, "1 + 1")
    assert "2" in after.locator(".jp-OutputArea-executeResult").inner_text()


def test_read_line_shows_an_input_box_and_the_typed_line_finishes_the_cell(welcome):
    cell = add_cell_and_run(
        welcome,
        'print!("Your name: ");\nlet mut s = String::new();\n'
        'std::io::stdin().read_line(&mut s).unwrap();\nprintln!("got [{}]", s.trim());',
        wait=False,
    )
    box = cell.locator(".jp-Stdin-input")
    box.wait_for(timeout=CELL_TIMEOUT * 1000)
    prompt = cell.locator(".jp-Stdin-prompt").inner_text()
    assert prompt.strip() == "Your name:", prompt
    screenshot(cell, "stdin-input-box")
    box.fill("Grace Hopper")
    box.press("Enter")
    welcome.wait_for_function(
        "el => el.innerText.trim() !== '[*]:' && el.innerText.trim() !== '[ ]:'",
        arg=cell.locator(".jp-InputArea-prompt").element_handle(),
        timeout=CELL_TIMEOUT * 1000,
    )
    # JupyterLab swaps the box for the typed line once its hiding transition ends.
    welcome.wait_for_function(
        "el => !el.querySelector('.jp-Stdin')", arg=cell.element_handle(), timeout=10_000
    )
    outputs = cell.locator(".jp-OutputArea-child").all_inner_texts()
    assert any("got [Grace Hopper]" in o for o in outputs), outputs
    check_footer(cell, f"the stdin cell {outputs}")
    screenshot(cell, "stdin-answered")


def last_output_text(cell) -> str:
    return footer_of(cell).inner_text().strip() if cell.locator(".jp-OutputArea-child").count() else ""


def test_rust_syntax_highlighting(welcome):
    cell = add_cell_and_run(welcome, 'fn greet(name: &str) -> String { let s = "hi"; format!("{s} {name}") }')
    colors = cell.locator(".cm-content").evaluate(
        """el => Object.fromEntries([...el.querySelectorAll('span')].map(
              s => [s.textContent, getComputedStyle(s).color]))"""
    )
    plain = cell.locator(".cm-line").first.evaluate("el => getComputedStyle(el).color")
    # `fn` and `let` are keywords in Rust only (not in Python or plain text).
    for keyword in ("fn", "let"):
        assert keyword in colors and colors[keyword] != plain, f"{keyword!r} not highlighted: {colors}"
    assert colors.get('"hi"') not in (None, plain, colors["fn"]), f"string not highlighted: {colors}"


def test_tab_completion_offers_hashmap(welcome):
    notebook = welcome.locator(".jp-NotebookPanel:visible .jp-Notebook")
    notebook.locator(".jp-Cell").last.click()
    welcome.keyboard.press("Escape")
    welcome.keyboard.press("b")
    notebook.locator(".jp-Cell").last.locator(".cm-content").click()
    welcome.keyboard.insert_text("std::collections::Hash")
    welcome.keyboard.press("Tab")
    completer = welcome.locator(".jp-Completer:visible")
    completer.wait_for(timeout=60_000)
    items = completer.locator(".jp-Completer-item").all_inner_texts()
    assert any("HashMap" in item for item in items), items
    welcome.keyboard.press("Escape")


# WCAG 2 level AA: normal-size text needs a contrast ratio of at least 4.5:1.
WCAG_AA_TEXT = 4.5

# An element's text colour as painted: its colour's alpha times the opacity of it and every
# ancestor, and the first non-transparent background behind it (white if none).
PAINTED_COLORS_JS = """el => {
    const rgba = c => { const v = c.match(/[\\d.]+/g).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
    let alpha = 1;
    for (let e = el; e; e = e.parentElement) alpha *= parseFloat(getComputedStyle(e).opacity);
    let bg = el, c = null;
    while (bg && ((c = getComputedStyle(bg).backgroundColor) === 'rgba(0, 0, 0, 0)' || c === 'transparent')) bg = bg.parentElement;
    return {text: rgba(getComputedStyle(el).color), opacity: alpha, background: rgba(bg ? c : 'rgb(255, 255, 255)')};
}"""


def wcag_luminance(rgb) -> float:
    """WCAG 2 relative luminance of an (r, g, b) colour, 0–255 each."""
    def linear(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg, bg) -> float:
    lighter, darker = sorted((wcag_luminance(fg), wcag_luminance(bg)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_contrast(locator) -> tuple[float, str]:
    """The contrast ratio of an element's text as painted, and what was compared."""
    colors = locator.evaluate(PAINTED_COLORS_JS)
    bg = colors["background"][:3]
    alpha = colors["text"][3] * colors["opacity"]
    painted = [t * alpha + b * (1 - alpha) for t, b in zip(colors["text"][:3], bg)]
    ratio = contrast(painted, bg)
    return ratio, f"{ratio:.2f}:1 (text {colors['text']} × opacity {colors['opacity']:.2f} on {bg})"


def hex_rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))


def chart_label_contrast(img) -> tuple[float, str]:
    """The contrast of a chart's label against what is behind it: the chart's own opaque
    background when it draws one, else the page behind the image."""
    import base64
    import re

    svg = base64.b64decode(img.get_attribute("src").split("base64,", 1)[1]).decode()
    label = hex_rgb(re.search(r'<text[^>]*fill="(#[0-9a-fA-F]{6})"', svg).group(1))
    tile = re.search(r'<rect[^>]*fill="(#[0-9a-fA-F]{6})"', svg)
    if tile:
        behind, where = hex_rgb(tile.group(1)), "the chart's background"
    else:
        behind, where = tuple(img.evaluate(PAINTED_COLORS_JS)["background"][:3]), "the page"
    ratio = contrast(label, behind)
    return ratio, f"{ratio:.2f}:1 (label {label} on {where} {behind})"


def font_px(locator) -> float:
    return float(locator.evaluate("el => parseFloat(getComputedStyle(el).fontSize)"))


UNTRUSTED_CELLS = [
    ":label nap\nstd::thread::sleep(std::time::Duration::from_millis(800));",
    ":label spin\nlet t = std::time::Instant::now();\n"
    "while t.elapsed() < std::time::Duration::from_millis(400) {}",
    ":compare nap spin",
]


def test_untrusted_notebook_footer_survives_the_sanitizer(lab, lab_page, monkeypatch):
    from nbclient import NotebookClient

    if "JUPYTER_PATH" in lab.env:  # nbclient runs the same kernelspec as the server
        monkeypatch.setenv("JUPYTER_PATH", lab.env["JUPYTER_PATH"])
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in UNTRUSTED_CELLS]
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": DISPLAY_NAME, "language": "rust"}
    # Under load, as in a class: the footer's run time must still be what the cell did.
    with busy_loops(2):
        NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT, startup_timeout=CELL_TIMEOUT).execute()
    nbformat.write(nb, lab.root / "untrusted.ipynb")
    assert not any_trusted(lab, "untrusted.ipynb"), "the server trusts a notebook it never signed"

    page = lab_page
    page.locator(".jp-FileBrowser jp-button[data-command='filebrowser:refresh'], "
                 ".jp-FileBrowser [data-command='filebrowser:refresh']").first.click()
    open_from_file_browser(page, "untrusted.ipynb", DISPLAY_NAME)
    cells = page.locator(f".jp-NotebookPanel:visible {CODE_CELL}")
    cells.nth(len(UNTRUSTED_CELLS) - 1).locator(".jp-OutputArea-child").last.wait_for()
    outputs = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output")
    assert outputs.count() and not page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output.jp-mod-trusted").count(), (
        "JupyterLab renders the nbclient notebook's outputs as trusted"
    )
    nap = check_footer(cells.nth(0), "untrusted nap cell")
    assert nap.startswith("✓ ran 0.8") and "CPU" in nap, nap
    assert len(images_loaded(footer_of(cells.nth(0)))) == 3, "charts stripped from the untrusted footer"
    screenshot(footer_of(cells.nth(0)), "footer-untrusted")
    table = cells.nth(2).locator("table.rustmeter-compare")
    assert table.count() == 1 and "nap" in table.inner_text() and "spin" in table.inner_text()
    bars = table.evaluate("t => [...t.querySelectorAll('td div')].map(d => d.getBoundingClientRect().width)")
    assert bars and all(w >= 1 for w in bars), f"compare bars lost in the untrusted notebook: {bars}"
    screenshot(table, "compare-untrusted")

    # Run here and saved here, the same notebook is signed and reopens trusted.
    menu(page, "Run", "Run All Cells")
    wait_cells_done(page, cells, RUN_ALL_TIMEOUT)
    page.keyboard.press("Control+s")
    # Read only once the save is done: a read meeting the file half-written makes the
    # server restore its backup, undoing the save (jupyter_server's atomic writing).
    page.locator(".lm-TabBar-tab.lm-mod-current.jp-mod-dirty").first.wait_for(state="detached", timeout=30_000)
    deadline = time.monotonic() + 30
    while not saved_and_trusted(lab, "untrusted.ipynb"):
        assert time.monotonic() < deadline, "a notebook run and saved in JupyterLab is not trusted"
        time.sleep(0.5)
    assert page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output.jp-mod-trusted").count()


def code_cells_trusted(lab, path: str) -> list[bool]:
    cells = lab.api(f"contents/{path}")["content"]["cells"]
    return [bool(c["metadata"].get("trusted")) for c in cells if c["cell_type"] == "code"]


def any_trusted(lab, path: str) -> bool:
    return any(code_cells_trusted(lab, path))


def all_trusted(lab, path: str) -> bool:
    return all(code_cells_trusted(lab, path))


def saved_and_trusted(lab, path: str) -> bool:
    """All code cells trusted; False while the server answers 400 (a read that still met
    the file mid-write: jupyter_server saves in place, after a backup copy)."""
    try:
        return all_trusted(lab, path)
    except urllib.error.HTTPError as error:
        if error.code != 400:
            raise
        print(f"contents/{path} while saving: 400 {error.read()[:200]!r}")
        return False


def test_notebook7_opens_and_runs_the_welcome_notebook(browser):
    server = start_server("notebook")
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(server.url(f"notebooks/{WELCOME}"))
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
        wait_kernel_ready(page, DISPLAY_NAME)
        menu(page, "Run", "Run All Cells")
        cells = page.locator(f".jp-NotebookPanel:visible {CODE_CELL}")
        wait_cells_done(page, cells, RUN_ALL_TIMEOUT)
        for i in range(cells.count()):
            check_footer(cells.nth(i), f"Notebook 7 {WELCOME} code cell {i}")
        screenshot(page.locator(".jp-NotebookPanel:visible"), "notebook7")
    finally:
        page.close()
        server.stop()


def tutorials_to_run() -> list[str]:
    """The newest tutorial (each takes about a minute here; 01 runs above), or those named
    in BROWSER_TUTORIALS ("all", or stems such as "05-cpu,09-cancellation")."""
    tutorials = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb") if not p.name.startswith("00-"))
    asked = os.environ.get("BROWSER_TUTORIALS", "").strip()
    if not asked:
        return tutorials[-1:]
    if asked == "all":
        # 01 runs in the tests above, and their cells are added to its copy.
        return [t for t in tutorials if t != WELCOME]
    chosen = [f"{stem.strip().removesuffix('.ipynb')}.ipynb" for stem in asked.split(",") if stem.strip()]
    unknown = sorted(set(chosen) - set(tutorials))
    if unknown:
        raise ValueError(f"BROWSER_TUTORIALS names {unknown}; the tutorials are {tutorials}")
    return chosen


def ran_clean(cell, source: str, where: str) -> bool:
    """Whether a tutorial cell ran without an error, read from what JupyterLab shows: a
    cell that ran ends with its footer, a failed one with the error whose last line is the
    footer's ("✗ compile error (0.42 s) │ …"); rustmeter's commands (`:compare`) show
    their table instead."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    if lines and all(line.startswith((":compare", ":telemetry", ":label")) for line in lines):
        shown = footer_of(cell)
        assert shown.count() and shown.inner_text().strip(), f"{where}: the command showed nothing"
        return True
    if footer_of(cell).locator(".rustmeter-footer").count():
        return check_footer(cell, where).startswith("✓")
    last_line = footer_of(cell).inner_text().strip().splitlines()[-1:] or [""]
    assert last_line[0].startswith(("✗", "■")), f"{where}: no footer and no failed footer: {last_line[0]!r}"
    return False


@pytest.mark.parametrize("name", tutorials_to_run(), ids=lambda n: n.removesuffix(".ipynb"))
def test_tutorial_runs_in_jupyterlab_with_a_footer_under_every_cell(browser, lab, name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    must_fail = [i for i, c in enumerate(code) if "raises-exception" in c.metadata.get("tags", [])]
    # A workspace of its own: the page does not reopen the other tests' notebooks.
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(lab.url(f"lab/workspaces/{name.removesuffix('.ipynb')}/tree/{name}"))
        page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=60_000)
        wait_kernel_ready(page, DISPLAY_NAME)
        started = time.monotonic()
        menu(page, "Run", "Run All Cells")
        cells = page.locator(f".jp-NotebookPanel:visible {CODE_CELL}")
        wait_cells_done(page, cells, RUN_ALL_TIMEOUT)
        print(f"{name}: Run All Cells took {time.monotonic() - started:.1f} s")
        assert cells.count() == len(code), f"{name}: {cells.count()} code cells shown, {len(code)} in the file"
        failed = [i for i in range(cells.count()) if not ran_clean(cells.nth(i), code[i].source, f"{name} code cell {i}")]
        assert failed == must_fail, f"{name}: ✗ footers under code cells {failed}; raises-exception cells {must_fail}"
        screenshot(page.locator(".jp-NotebookPanel:visible"), f"tutorial-{name.removesuffix('.ipynb')}")
    finally:
        page.close()
        shut_down_kernels_of(lab, name)


def shut_down_kernels_of(lab, name: str) -> None:
    """Ends the kernel of each session on `name` (a closed page leaves it running)."""
    for session in lab.api("sessions"):
        if session.get("path", "").endswith(name):
            request = urllib.request.Request(
                lab.url(f"api/sessions/{session['id']}"), method="DELETE",
                headers={"Authorization": f"token {lab.token}"},
            )
            urllib.request.urlopen(request, timeout=30).close()
