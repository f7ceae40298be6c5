// The player's small parts: icons, time text, and a menu button (captions, audio, quality) that the
// keyboard drives as the ARIA menu pattern says (arrows, Home/End, Escape back to its button).

// The SVG namespace as the HTML parser gives it (the page names no other host, not even a namespace's).
const SVG = (() => {
  const holder = document.createElement("div");
  holder.innerHTML = "<svg></svg>";
  return holder.firstChild.namespaceURI;
})();

// Each icon: paths on a 24×24 grid, [d, "fill" | "stroke"], and an optional text.
const ICONS = {
  play: [["M8 5.5v13l10.5-6.5z", "fill"]],
  pause: [["M7 5h3.5v14H7zM13.5 5H17v14h-3.5z", "fill"]],
  volume: [["M4 9.5v5h3.5l4.5 4v-13l-4.5 4z", "fill"], ["M15 9a4 4 0 0 1 0 6M17.5 6.5a7.5 7.5 0 0 1 0 11", "stroke"]],
  muted: [["M4 9.5v5h3.5l4.5 4v-13l-4.5 4z", "fill"], ["M15.5 9.5l5 5M20.5 9.5l-5 5", "stroke"]],
  back: [["M12 5a7.5 7.5 0 1 1-7.2 9.5", "stroke"], ["M12 1.8v6.4L7.6 5z", "fill"]],
  forward: [["M12 5a7.5 7.5 0 1 0 7.2 9.5", "stroke"], ["M12 1.8v6.4L16.4 5z", "fill"]],
  captions: [["M3.5 5.5h17v13h-17z", "stroke"]],
  audio: [["M4.5 16v-3.5a7.5 7.5 0 0 1 15 0V16", "stroke"], ["M3.5 14h4v6h-4zM16.5 14h4v6h-4z", "fill"]],
  enter: [["M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5", "stroke"]],
  leave: [["M9 4v5H4M20 9h-5V4M15 20v-5h5M4 15h5v5", "stroke"]],
};
const TEXT = { back: "10", forward: "10", captions: "CC" };

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", `icon icon-${name}`);
  for (const [d, paint] of ICONS[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    path.setAttribute("class", paint);
    svg.append(path);
  }
  if (TEXT[name]) {
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", "12");
    text.setAttribute("y", name === "captions" ? "15.2" : "16");
    text.setAttribute("text-anchor", "middle");
    text.setAttribute("class", "label");
    text.textContent = TEXT[name];
    svg.append(text);
  }
  return svg;
}

// 75 -> "1:15", 3725 -> "1:02:05".
export function clock(seconds) {
  const s = Math.max(0, Math.floor(Number.isFinite(seconds) ? seconds : 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

// "1 minute 15 seconds" for screen readers.
export function spokenTime(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const parts = [[Math.floor(s / 3600), "hour"], [Math.floor((s % 3600) / 60), "minute"], [s % 60, "second"]];
  const said = parts.filter(([n]) => n).map(([n, unit]) => `${n} ${unit}${n === 1 ? "" : "s"}`);
  return said.join(" ") || "0 seconds";
}

// A button opening a menu of radio items. setItems([{label, value, checked}]); onPick(value).
export function menuButton(el, { id, name, iconName, onPick, onOpen }) {
  const label = el("span", { class: "vp-label" });
  const button = el("button", {
    type: "button", class: "vp-button vp-menu-button", id, "aria-haspopup": "menu", "aria-expanded": "false",
    "aria-controls": `${id}-menu`, "aria-label": name, title: name,
  }, iconName ? icon(iconName) : null, label);
  const menu = el("div", { class: "vp-menu", id: `${id}-menu`, role: "menu", "aria-label": name, hidden: true });
  const wrapper = el("div", { class: "vp-menu-wrap" }, button, menu);
  let items = [];

  const open = () => !menu.hidden;
  function close(focusButton = false) {
    if (!open()) return;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focusButton) button.focus();
  }
  function show() {
    onOpen?.();
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    (items.find((i) => i.getAttribute("aria-checked") === "true") || items[0])?.focus();
  }
  button.addEventListener("click", () => (open() ? close() : show()));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      event.preventDefault();
      event.stopPropagation();
      show();
    }
  });
  menu.addEventListener("keydown", (event) => {
    const at = items.indexOf(document.activeElement);
    const move = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }[event.key];
    if (move !== undefined) {
      items[(move + items.length) % items.length]?.focus();
    } else if (event.key === "Escape") {
      close(true);
    } else if (event.key === "Tab") {
      close();
      return;
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  });
  wrapper.addEventListener("focusout", (event) => {
    if (!wrapper.contains(event.relatedTarget)) close();
  });

  return {
    button, menu, wrapper, close, isOpen: open,
    setLabel(text, spoken = text) {
      label.textContent = text;
      button.setAttribute("aria-label", `${name}: ${spoken}`);
      button.title = `${name}: ${spoken}`;
    },
    setItems(list) {
      items = list.map(({ label: text, value, checked }) => {
        const item = el("button", {
          type: "button", role: "menuitemradio", class: "vp-menu-item", tabindex: "-1",
          "aria-checked": checked ? "true" : "false", "data-value": String(value),
        }, text);
        item.addEventListener("click", () => {
          close(true);
          onPick(value);
        });
        return item;
      });
      menu.replaceChildren(el("div", { class: "vp-menu-title", "aria-hidden": "true" }, name), ...items);
    },
    check(value) {
      for (const item of items) item.setAttribute("aria-checked", String(item.dataset.value === String(value)));
    },
  };
}
