// URLs to views: every page has its own address (bookmark it, open it in a new tab),
// links are real links, and Back and Forward work.

const routes = [];
let current = null;
let mainEl = null;

/** Add a route: `pattern` like "/services/:name"; `view(main, params)` returns the view. */
export function route(pattern, view) {
  const names = [];
  const regex = new RegExp(
    "^" + pattern.replace(/:([a-zA-Z]+)/g, (_, name) => (names.push(name), "([^/]+)")) + "/?$",
  );
  routes.push({ regex, names, view });
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

export function currentView() {
  return current;
}

/** Draw the view of the current URL, moving focus to its heading (as a page load would). */
export function render({ focus = true } = {}) {
  if (current && current.unmount) current.unmount();
  const path = location.pathname;
  for (const { regex, names, view } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = {};
    names.forEach((name, n) => {
      params[name] = decodeURIComponent(match[n + 1]);
    });
    current = view(mainEl, params);
    break;
  }
  document.title = `${current.title} · aegis monitor`;
  for (const link of document.querySelectorAll("nav.site a")) {
    const here = link.getAttribute("href") === "/" ? path === "/" : path.startsWith(link.getAttribute("href"));
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (focus) mainEl.querySelector("h1")?.focus({ preventScroll: false });
}

export function startRouter(main) {
  mainEl = main;
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
    const url = new URL(link.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => render());
  render({ focus: false });
}
