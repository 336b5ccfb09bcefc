"""What a learner does in JupyterLab / Notebook 7, as Playwright steps: open a notebook,
run cells, add a cell, read a cell's footer, switch the theme, take screenshots.

Owns only DOM selectors and waits; must not start servers (browser_helpers.py does) or
assert what the footer says (the tests do).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Locator, Page

from browser_helpers import ARTIFACTS

CODE_CELL = ".jp-Notebook .jp-CodeCell"
DONE_PROMPT = re.compile(r"\[\d+\]:")


def menu(page: Page, top: str, *items: str) -> None:
    """Clicks a menu bar entry, then each submenu item by its exact label."""
    page.locator(f".lm-MenuBar-itemLabel:text-is('{top}')").click()
    for item in items:
        page.locator(f".lm-Menu:visible .lm-Menu-itemLabel:text-is('{item}')").last.click()


def prompt_of(cell: Locator) -> str:
    return cell.locator(".jp-InputArea-prompt").inner_text().strip()


def wait_cells_done(page: Page, cells: Locator, timeout: float) -> None:
    """Waits until each of `cells` has run (its prompt shows an execution count) and the
    kernel is idle; a cell that never ran (a cell above failed) times out naming it."""
    deadline = time.monotonic() + timeout
    while True:
        prompts = [prompt_of(cells.nth(i)) for i in range(cells.count())]
        waiting = [i for i, p in enumerate(prompts) if not DONE_PROMPT.fullmatch(p)]
        if not waiting and kernel_idle(page):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"cells {waiting} not run after {timeout}s (prompts {prompts})")
        time.sleep(0.5)


def kernel_idle(page: Page) -> bool:
    """The kernel status JupyterLab and Notebook 7 show in the notebook's toolbar."""
    return kernel_status(page) == "idle"


def kernel_status(page: Page) -> str:
    indicator = page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator")
    return (indicator.first.get_attribute("data-status") or "") if indicator.count() else ""


def wait_kernel_ready(page: Page, kernel_display_name: str, timeout: float = 120) -> None:
    """Waits until the visible notebook's toolbar names the kernel and shows it idle.
    (Before the session exists the toolbar says "No Kernel"; cells run then would open
    the kernel picker instead of running.)"""
    page.wait_for_function(
        """name => {
            const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
                .find(p => p.offsetParent !== null);
            if (!panel) return false;
            const label = panel.querySelector('.jp-Toolbar-kernelName');
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
            return label && label.textContent.trim() === name
                && status && status.dataset.status === 'idle';
        }""",
        arg=kernel_display_name,
        timeout=timeout * 1000,
    )


def open_from_file_browser(page: Page, name: str, kernel_display_name: str) -> None:
    page.locator(f".jp-DirListing-item:has-text('{name}')").first.dblclick()
    page.locator(f".lm-TabBar-tab.lm-mod-current:has-text('{name}')").wait_for()
    page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for()
    wait_kernel_ready(page, kernel_display_name)


def footer_of(cell: Locator) -> Locator:
    """The cell's last output (where rustmeter's footer must be)."""
    return cell.locator(".jp-OutputArea-child").last


def add_cell_and_run(page: Page, code: str, timeout: float = 120, wait: bool = True) -> Locator:
    """Appends a code cell at the end of the visible notebook, types `code`, runs it with
    Ctrl+Enter; returns the cell (after it finished when `wait`)."""
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
    notebook.locator(".jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    cell = notebook.locator(".jp-Cell").last
    cell.locator(".cm-content").click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Control+Enter")
    if wait:
        page.wait_for_function(
            "el => el.innerText.trim() !== '[*]:' && el.innerText.trim() !== '[ ]:'",
            arg=cell.locator(".jp-InputArea-prompt").element_handle(),
            timeout=timeout * 1000,
        )
    return cell


def set_theme(page: Page, dark: bool) -> None:
    menu(page, "Settings", "Theme", "JupyterLab Dark" if dark else "JupyterLab Light")
    page.wait_for_function(
        f"document.body.dataset.jpThemeLight === '{'false' if dark else 'true'}'"
    )
    page.wait_for_timeout(500)  # the theme's CSS transition


def screenshot(locator: Locator, name: str) -> Path:
    """Saves a PNG of `locator` under test-artifacts/browser/ and prints its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def images_loaded(locator: Locator) -> list[dict]:
    """Every <img> under `locator`: whether it decoded, its natural and shown size."""
    return locator.evaluate(
        """el => [...el.querySelectorAll('img')].map(img => {
            const r = img.getBoundingClientRect();
            return {complete: img.complete, natural: img.naturalWidth,
                    width: r.width, height: r.height, title: img.title};
        })"""
    )
