/// The pieces the agent's page (`WebPage`) and the fleet page
/// (`FleetPage` of `corral server`) share, each written once and
/// interpolated into both documents. The Content-Security-Policy hashes the
/// finished `<script>` and `<style>` text, so a piece changes both pages'
/// hashes, computed as before by `ContentSecurityPolicy.policy(for:)`.
package enum PageParts {
    /// The HTML document up to its `<style>`: doctype, language, charset, viewport and `title`.
    package static func head(title: String) -> String {
        #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>\#(title)</title>
"""#
    }

    /// CSS: the colour variables (page, ink, states, terminal), box sizing and the body font.
    package static let baseStyle = #"""
  :root { --bg:#f6f7f9; --panel:#fff; --ink:#1d2330; --muted:#5b6578; --line:#e3e6eb; --accent:#2f6fed;
          --ok:#1a7f45; --bad:#b8312a; --warn:#9a6512; --run:#2f6fed; --term-bg:#0f1420; --term-fg:#d8dee9; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
"""#

    /// CSS: disabled buttons, the keyboard focus ring and the toolbars above tables.
    package static let controlStyle = #"""
  button:disabled { opacity:.5; cursor:default; }
  :focus-visible { outline:3px solid #f0b429; outline-offset:1px; }
  .toolbar { display:flex; flex-wrap:wrap; gap:8px; align-items:center; margin-bottom:8px; color:var(--muted); }
  .toolbar input[type=search] { flex:1 1 160px; }
"""#

    /// CSS: the ANSI classes `styled` sets (bold, dim, italic, underline, 16 colours fore and back, inverse) inside `scope`.
    package static func terminalStyle(_ scope: String) -> String {
        #"""
  \#(scope) .bold { font-weight:700; } \#(scope) .dim { opacity:.7; } \#(scope) .italic { font-style:italic; } \#(scope) .ul { text-decoration:underline; }
  \#(scope) .f0 { color:#4c566a; } \#(scope) .f1 { color:#ff5f56; } \#(scope) .f2 { color:#5fd068; } \#(scope) .f3 { color:#f4d35e; } \#(scope) .f4 { color:#5c9dff; }
  \#(scope) .f5 { color:#d47ee8; } \#(scope) .f6 { color:#4fd6d6; } \#(scope) .f7 { color:#d8dee9; } \#(scope) .f8 { color:#7b869c; } \#(scope) .f9 { color:#ff8a80; }
  \#(scope) .f10 { color:#9cf09f; } \#(scope) .f11 { color:#fff59d; } \#(scope) .f12 { color:#9ec5ff; } \#(scope) .f13 { color:#f0b0ff; } \#(scope) .f14 { color:#a0f0f0; } \#(scope) .f15 { color:#ffffff; }
  \#(scope) .b0 { background:#4c566a; } \#(scope) .b1 { background:#a1261f; } \#(scope) .b2 { background:#1f7a35; } \#(scope) .b3 { background:#8a6d0b; } \#(scope) .b4 { background:#1f4fa8; }
  \#(scope) .b5 { background:#7a2f8a; } \#(scope) .b6 { background:#16717a; } \#(scope) .b7 { background:#aab2c0; } \#(scope) .b8 { background:#5f6a80; } \#(scope) .b9 { background:#d9463c; }
  \#(scope) .b10 { background:#2fa852; } \#(scope) .b11 { background:#b89a1a; } \#(scope) .b12 { background:#3f77d9; } \#(scope) .b13 { background:#a64fba; } \#(scope) .b14 { background:#2a9ea8; } \#(scope) .b15 { background:#e5e9f0; }
  \#(scope) .fi { color:var(--term-bg); } \#(scope) .bi { background:var(--term-fg); }
"""#
    }

    /// HTML: the token prompt shown on a 401 (`showLogin`); `holder` names what asks for the token ("agent").
    package static func tokenPrompt(_ holder: String) -> String {
        #"""
<section id="login" hidden>
  <h2>Token required</h2>
  <p id="login-why">This \#(holder) requires a token. Enter it to open the page (it is kept as a cookie for this site).</p>
  <form id="login-form" method="get" action="/">
    <input id="token" name="token" type="password" autocomplete="current-password" aria-label="token" required>
    <button type="submit">Open</button>
  </form>
</section>
"""#
    }

    /// JS: strict mode, `$` for `getElementById`, and a `?token=` taken out of the address bar once the cookie is set.
    package static let scriptStart = #"""
"use strict";
const $ = (id) => document.getElementById(id);
const hadToken = location.search.includes("token=");
if (hadToken) history.replaceState(null, "", "/" + location.hash);
"""#

    /// JS: `setText` (writes only a change, so a selection survives a refresh) and `span`, seconds as "1.5s", "2m05s", "1h02m".
    package static let textHelpers = #"""
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
function span(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return (seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1)).replace(/\.?0+$/, "") + "s";
  const m = Math.floor(seconds / 60), h = Math.floor(m / 60);
  return h ? h + "h" + String(m % 60).padStart(2, "0") + "m" : m + "m" + String(Math.floor(seconds % 60)).padStart(2, "0") + "s";
}
"""#

    /// JS: `showLogin`, which hides the page and asks for the token; `holder` as in `tokenPrompt`.
    package static func showLogin(_ holder: String) -> String {
        #"""
function showLogin() {
  $("login").hidden = false; $("main").hidden = true;
  $("login-why").textContent = hadToken ? "That token was refused. Enter the \#(holder)'s token." :
    "This \#(holder) requires a token. Enter it to open the page (it is kept as a cookie for this site).";
  if (document.activeElement !== $("token")) $("token").focus();
}
"""#
    }

    /// JS: `keyboardRows(body, open)`, arrow keys, Home and End move between the rows of a table body; Enter or Space opens one.
    package static let keyboardRows = #"""
function keyboardRows(body, open) {
  body.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr");
    if (!tr) return;
    let to = null;
    if (event.key === "ArrowDown") to = tr.nextElementSibling;
    else if (event.key === "ArrowUp") to = tr.previousElementSibling;
    else if (event.key === "Home") to = tr.parentElement.firstElementChild;
    else if (event.key === "End") to = tr.parentElement.lastElementChild;
    else if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(tr); return; }
    else return;
    event.preventDefault();
    if (to) { tr.tabIndex = -1; to.tabIndex = 0; to.focus(); }
  });
}
"""#

    /// JS: `splitWords`, argv text split into words as a POSIX shell splits them, or an error that says what is wrong.
    package static let splitWords = #"""
// Splits argv text as a POSIX shell would split words: '…' literal,
// "…" with \" \\ \$ \` escapes, a backslash escaping the next character.
function splitWords(text) {
  const words = [];
  let word = null, index = 0;
  while (index < text.length) {
    const c = text[index];
    if (c === " " || c === "\t" || c === "\n") { if (word !== null) { words.push(word); word = null; } index++; continue; }
    if (word === null) word = "";
    if (c === "'") {
      const end = text.indexOf("'", index + 1);
      if (end < 0) throw new Error("argv: a ' quote is not closed");
      word += text.slice(index + 1, end); index = end + 1;
    } else if (c === '"') {
      index++;
      for (;;) {
        if (index >= text.length) throw new Error('argv: a " quote is not closed');
        const d = text[index];
        if (d === '"') { index++; break; }
        if (d === "\\" && index + 1 < text.length && '"\\$`'.includes(text[index + 1])) { word += text[index + 1]; index += 2; continue; }
        word += d; index++;
      }
    } else if (c === "\\") {
      if (index + 1 >= text.length) throw new Error("argv: a backslash at the end escapes nothing");
      word += text[index + 1]; index += 2;
    } else { word += c; index++; }
  }
  if (word !== null) words.push(word);
  if (!words.length) throw new Error("argv: no words");
  return words;
}
"""#

    /// JS: ANSI colours: `renderText(state, text, into, base)` pushes spans styled by SGR (16/256/RGB), with class `base`.
    package static let ansi = #"""
const PALETTE = [[0,0,0],[205,49,49],[13,188,121],[229,229,16],[36,114,200],[188,63,188],[17,168,205],[229,229,229],
                 [102,102,102],[241,76,76],[35,209,139],[245,245,67],[59,142,234],[214,112,214],[41,184,219],[255,255,255]];
function xterm(n) {
  if (n < 16) return PALETTE[n];
  if (n < 232) { const v = [0, 95, 135, 175, 215, 255]; n -= 16; return [v[Math.floor(n / 36)], v[Math.floor(n / 6) % 6], v[n % 6]]; }
  const g = 8 + 10 * (n - 232); return [g, g, g];
}
function sgr(state, text) {
  const codes = text === "" ? [0] : text.split(/[;:]/).map((v) => v === "" ? 0 : Number(v));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(state, { fg: null, bg: null, bold: false, dim: false, italic: false, ul: false, inverse: false });
    else if (c === 1) state.bold = true; else if (c === 2) state.dim = true; else if (c === 3) state.italic = true;
    else if (c === 4) state.ul = true; else if (c === 7) state.inverse = true;
    else if (c === 22) { state.bold = false; state.dim = false; } else if (c === 23) state.italic = false;
    else if (c === 24) state.ul = false; else if (c === 27) state.inverse = false;
    else if (c >= 30 && c <= 37) state.fg = c - 30; else if (c >= 90 && c <= 97) state.fg = c - 82;
    else if (c >= 40 && c <= 47) state.bg = c - 40; else if (c >= 100 && c <= 107) state.bg = c - 92;
    else if (c === 39) state.fg = null; else if (c === 49) state.bg = null;
    else if (c === 38 || c === 48) {
      let color = null;
      if (codes[i + 1] === 5 && codes[i + 2] != null) { color = codes[i + 2] < 16 ? codes[i + 2] : xterm(Math.min(255, codes[i + 2])); i += 2; }
      else if (codes[i + 1] === 2 && codes[i + 4] != null) { color = [codes[i + 2], codes[i + 3], codes[i + 4]].map((v) => Math.min(255, v)); i += 4; }
      if (c === 38) state.fg = color; else state.bg = color;
    }
  }
}
function styled(state, text, base) {
  const node = document.createElement("span");
  const classes = base ? [base] : [];
  let fg = state.fg, bg = state.bg;
  if (state.inverse) { const t = fg; fg = bg == null ? "inverse" : bg; bg = t == null ? "inverse" : t; }
  for (const [value, prefix] of [[fg, "f"], [bg, "b"]]) {
    if (value === "inverse") classes.push(prefix + "i");
    else if (typeof value === "number") classes.push(prefix + value);
    else if (Array.isArray(value)) node.style[prefix === "f" ? "color" : "backgroundColor"] = "rgb(" + value.join(",") + ")";
  }
  if (state.bold) classes.push("bold"); if (state.dim) classes.push("dim");
  if (state.italic) classes.push("italic"); if (state.ul) classes.push("ul");
  node.className = classes.join(" ");
  node.textContent = text;
  return node;
}
// Text with escape sequences: SGR (ESC [ … m) sets the style; every other
// CSI, OSC and two-byte escape is removed; a sequence cut at the end of a
// chunk waits for the next one.
const ESCAPE = /\x1b(?:\[([0-9;:?<=>]*)[ -\/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -\/]*[0-Z\\^-~])/y;
const PARTIAL = /^\x1b(?:\[[0-9;:?<=>]*[ -\/]*|\][^\x07\x1b]*\x1b?|[ -\/]*)$/;
function renderText(st, text, into, base) {
  text = st.carry + text; st.carry = "";
  let plain = 0, index = 0;
  const flush = (end) => { if (end > plain) into.push(styled(st, text.slice(plain, end), base)); };
  for (;;) {
    const at = text.indexOf("\x1b", index);
    if (at < 0) break;
    ESCAPE.lastIndex = at;
    const m = ESCAPE.exec(text);
    if (!m) {
      if (text.length - at < 512 && PARTIAL.test(text.slice(at))) { flush(at); st.carry = text.slice(at); return; }
      index = at + 1; continue;
    }
    flush(at);
    if (m[2] === "m" && !/[?<=>]/.test(m[1] || "")) sgr(st, m[1] || "");
    plain = index = at + m[0].length;
  }
  flush(text.length);
}
"""#
}
