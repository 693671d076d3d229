// Autocomplete of package names for the last word of the search box (the page works
// without it). Arrow keys move through the list, Enter or a click takes a name, Escape closes.
(function () {
  const input = document.getElementById("q");
  const list = document.getElementById("suggestions");
  if (!input || !list || !window.fetch) return;
  let items = [], active = -1, pending = null;

  function lastWord() {
    const match = /(\S*)$/.exec(input.value);
    return match ? match[1] : "";
  }
  function close() {
    list.hidden = true; items = []; active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }
  function render() {
    list.replaceChildren(...items.map(function (item, i) {
      const li = document.createElement("li");
      li.id = "suggestion-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === active));
      li.dataset.value = item.value;
      li.textContent = item.value + " (" + item.count.toLocaleString() + ")";
      li.addEventListener("mousedown", function (event) { event.preventDefault(); take(i); });
      return li;
    }));
    list.hidden = items.length === 0;
    input.setAttribute("aria-expanded", String(!list.hidden));
    if (active >= 0) input.setAttribute("aria-activedescendant", "suggestion-" + active);
  }
  function take(i) {
    const word = lastWord();
    input.value = input.value.slice(0, input.value.length - word.length) + items[i].value;
    close();
    input.focus();
  }
  input.addEventListener("input", function () {
    const word = lastWord();
    clearTimeout(pending);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(word)) { close(); return; }
    pending = setTimeout(function () {
      fetch("/api/suggest?q=" + encodeURIComponent(word)).then(function (response) {
        return response.ok ? response.json() : { suggestions: [] };
      }).then(function (body) {
        if (lastWord() !== word) return;
        items = body.suggestions; active = -1; render();
      }).catch(close);
    }, 60);
  });
  input.addEventListener("keydown", function (event) {
    // Escape closes the list, and never erases what was typed (a search input's default).
    if (event.key === "Escape") event.preventDefault();
    if (list.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (active < 0) {
        active = event.key === "ArrowDown" ? 0 : items.length - 1;
      } else {
        const step = event.key === "ArrowDown" ? 1 : -1;
        active = (active + step + items.length) % items.length;
      }
      render();
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      take(active);
    } else if (event.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", function () { setTimeout(close, 100); });
})();
