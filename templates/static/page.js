// What script adds to the page (everything also works without it): the filter drawer open
// on wide screens, copy buttons, "more…" and a facet's value search in place.
(function () {
  "use strict";
  const announce = document.getElementById("announce");
  function say(text) {
    if (!announce) return;
    announce.textContent = "";
    setTimeout(function () { announce.textContent = text; }, 30);
  }

  // The drawer: open beside the results on wide screens, folded above them on phones.
  const drawer = document.getElementById("filters");
  if (drawer && window.matchMedia) {
    const wide = window.matchMedia("(min-width: 48rem)");
    const follow = function () { drawer.open = wide.matches; };
    follow();
    wide.addEventListener("change", follow);
  }

  // Copy buttons: shown only when script runs; "Copied" for two seconds, announced.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      const done = document.execCommand("copy");
      area.remove();
      if (done) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }
  function setUpCopy(root) {
    root.querySelectorAll("button.copy").forEach(function (button) {
      button.hidden = false;
      if (button.dataset.ready) return;
      button.dataset.ready = "1";
      button.addEventListener("click", function () {
        copyText(button.dataset.copy).then(function () {
          button.textContent = "Copied";
          button.classList.add("copied");
          say("Copied to the clipboard");
          clearTimeout(button._reset);
          button._reset = setTimeout(function () {
            button.textContent = "Copy";
            button.classList.remove("copied");
          }, 2000);
        }, function () { say("Could not copy: select the text instead"); });
      });
    });
  }
  setUpCopy(document);

  // "more…" / "fewer" and a facet's value search: fetch that state of the page and swap
  // in its facet section, staying where the user is.
  function fetchPage(url) {
    return fetch(url, { headers: { Accept: "text/html" } }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    }).then(function (html) {
      return new DOMParser().parseFromString(html, "text/html");
    });
  }
  function sectionOf(doc, facet) {
    return doc.querySelector('section.facet[data-facet="' + CSS.escape(facet) + '"]');
  }
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("section.facet a.more");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    const facet = link.dataset.facet;
    const url = link.href.split("#")[0];
    const before = link.closest("section.facet").querySelectorAll("li a").length;
    fetchPage(url).then(function (doc) {
      const fresh = sectionOf(doc, facet), old = sectionOf(document, facet);
      if (!fresh || !old) { window.location.href = link.href; return; }
      old.replaceWith(fresh);
      history.replaceState(null, "", url);
      // The focus goes to the first value that was not listed before (it appears where
      // "more…" was); on "fewer", to the link that brings the rest back.
      const values = fresh.querySelectorAll("li a");
      const target = values.length > before ? values[before] : fresh.querySelector("a.more");
      if (target) target.focus({ preventScroll: values.length <= before });
      say(fresh.querySelectorAll("li a").length + " values listed");
    }).catch(function () { window.location.href = link.href; });
  });
  let pending = null, latest = 0;
  document.addEventListener("input", function (event) {
    const input = event.target;
    if (!input.matches || !input.matches("section.facet form.find input[type=search]")) return;
    const form = input.form, section = input.closest("section.facet");
    clearTimeout(pending);
    pending = setTimeout(function () {
      const url = form.action.split("#")[0] + "?" + new URLSearchParams(new FormData(form)).toString();
      const ticket = ++latest;
      fetchPage(url).then(function (doc) {
        if (ticket !== latest) return;  // a newer search is on its way
        const fresh = sectionOf(doc, section.dataset.facet);
        const list = section.querySelector("ul"), more = section.querySelector("a.more");
        if (!fresh) return;
        list.replaceWith(fresh.querySelector("ul"));
        const freshMore = fresh.querySelector("a.more");
        if (more && freshMore) { more.replaceWith(freshMore); } else if (more) { more.remove(); }
        else if (freshMore) { section.appendChild(freshMore); }
        history.replaceState(null, "", url);  // reload or share: the same list
        const count = section.querySelectorAll("li a").length;
        say(count === 1 ? "1 value" : count + " values");
      }).catch(function () {});
    }, 150);
  });
})();
