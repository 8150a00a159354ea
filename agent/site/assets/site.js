/* paper-agent archive: search and filters over plain HTML pages. Hand-written, no build step,
   no request beyond this site. Text from the index is only ever set as textContent. */
(function () {
  "use strict";

  var PAGE = 50; // hits shown at once; "Show more" adds as many
  var DAY = /^\d{4}-\d{2}-\d{2}$/;
  var ANCHOR = /^p-[A-Za-z0-9._-]+$/;

  function fold(text) {
    return String(text).toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
  }

  function terms(text) {
    return fold(text).split(/\s+/).filter(Boolean);
  }

  function readForm(form) {
    var get = function (name) {
      var field = form.elements.namedItem(name);
      return field ? field.value.trim() : "";
    };
    var min = parseFloat(get("min"));
    return {
      q: terms(get("q")),
      tag: get("tag"),
      min: isNaN(min) ? null : min,
      profile: get("profile"),
    };
  }

  function active(state) {
    return state.q.length > 0 || state.tag !== "" || state.min !== null || state.profile !== "";
  }

  // The filters live in the URL (?q=...&tag=...), so a filtered view can be shared or reloaded.
  function restore(form) {
    var params = new URLSearchParams(window.location.search);
    ["q", "tag", "min", "profile"].forEach(function (name) {
      var field = form.elements.namedItem(name);
      var value = params.get(name);
      if (field && value !== null) field.value = value;
    });
  }

  function remember(form) {
    var params = new URLSearchParams();
    ["q", "tag", "min", "profile"].forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field && field.value.trim() !== "") params.set(name, field.value.trim());
    });
    var query = params.toString();
    var url = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
    window.history.replaceState(null, "", url);
  }

  // The relevance a filter reads: the chosen profile's, else the best of any.
  function relevanceOf(scores, profile) {
    if (profile) return Object.prototype.hasOwnProperty.call(scores, profile) ? scores[profile] : null;
    var best = null;
    Object.keys(scores).forEach(function (name) {
      if (best === null || scores[name] > best) best = scores[name];
    });
    return best;
  }

  function matches(item, state) {
    for (var i = 0; i < state.q.length; i++) {
      if (item.text.indexOf(state.q[i]) === -1) return false;
    }
    if (state.tag && item.tags.indexOf(state.tag) === -1) return false;
    if (state.min !== null || state.profile) {
      var rel = relevanceOf(item.scores, state.profile);
      if (rel === null) return false;
      if (state.min !== null && rel < state.min) return false;
    }
    return true;
  }

  function plural(count, noun) {
    return count.toLocaleString("en") + " " + noun + (count === 1 ? "" : "s");
  }

  /* Day and tag pages: the papers are on the page; filtering hides the others. */
  function pageFilter(form, status) {
    var items = Array.prototype.map.call(document.querySelectorAll("[data-paper]"), function (el) {
      var scores = {};
      el.querySelectorAll("[data-r]").forEach(function (s) {
        scores[s.getAttribute("data-profile")] = parseFloat(s.getAttribute("data-r"));
      });
      var tags = Array.prototype.map.call(el.querySelectorAll("[data-tag]"), function (a) {
        return a.textContent;
      });
      return { el: el, text: fold(el.textContent), tags: tags, scores: scores };
    });
    var groups = document.querySelectorAll("[data-group]");

    function apply() {
      var state = readForm(form);
      var shown = 0;
      items.forEach(function (item) {
        var keep = matches(item, state);
        item.el.hidden = !keep;
        if (keep) shown += 1;
      });
      groups.forEach(function (group) {
        group.hidden = !group.querySelector("[data-paper]:not([hidden])");
      });
      status.textContent = active(state)
        ? "Showing " + shown.toLocaleString("en") + " of " + plural(items.length, "paper") + "."
        : "";
      remember(form);
    }
    return apply;
  }

  /* The front page: every paper, from the JSON index (loaded on first use, newest month
     first, so the first hits come before the whole archive has arrived). */
  function archiveSearch(form, status) {
    var results = document.querySelector("[data-results]");
    var days = document.querySelector("[data-days]");
    var list = document.querySelector("[data-hits]");
    var more = document.querySelector("[data-more]");
    var items = [];
    var loading = null;
    var done = false; // every shard has arrived
    var failed = false;
    var hits = [];
    var shown = 0;

    function load() {
      if (loading) return loading;
      loading = fetch("search/index.json")
        .then(function (response) {
          if (!response.ok) throw new Error("search/index.json: " + response.status);
          return response.json();
        })
        .then(function (index) {
          // One shard after another, newest first: each adds its hits as it arrives.
          return index.shards.reduce(function (chain, shard) {
            return chain.then(function () {
              return fetch("search/" + encodeURIComponent(shard.file))
                .then(function (response) {
                  if (!response.ok) throw new Error(shard.file + ": " + response.status);
                  return response.json();
                })
                .then(function (data) {
                  add(data);
                  apply();
                });
            });
          }, Promise.resolve());
        })
        .then(function () {
          done = true;
          apply();
        })
        .catch(function () {
          failed = true;
          apply();
        });
      return loading;
    }

    function add(data) {
      var profiles = data.profiles || [];
      Object.keys(data.days)
        .sort()
        .reverse()
        .forEach(function (day) {
          if (!DAY.test(day)) return;
          data.days[day].forEach(function (row) {
            var scores = {};
            (row[4] || []).forEach(function (rel, i) {
              if (typeof rel === "number") scores[profiles[i]] = rel;
            });
            var tags = row[3] || [];
            items.push({
              day: day,
              anchor: String(row[0]),
              title: String(row[1]),
              authors: String(row[2] || ""),
              tags: tags,
              scores: scores,
              text: fold([row[1], row[2], tags.join(" ")].join(" ")),
            });
          });
        });
    }

    function hit(item, profile) {
      var li = document.createElement("li");
      var link = document.createElement("a");
      link.textContent = item.title;
      if (DAY.test(item.day) && ANCHOR.test(item.anchor)) {
        link.setAttribute("href", "days/" + item.day + ".html#" + item.anchor);
      }
      li.appendChild(link);
      var meta = document.createElement("span");
      meta.className = "meta";
      var parts = [item.day];
      if (item.authors) parts.push(item.authors);
      if (item.tags.length) parts.push(item.tags.join(", "));
      var names = profile ? [profile] : Object.keys(item.scores);
      var said = names
        .filter(function (name) {
          return Object.prototype.hasOwnProperty.call(item.scores, name);
        })
        .map(function (name) {
          return (names.length > 1 || profile ? name + " " : "relevance ") + item.scores[name].toFixed(1);
        });
      if (said.length) parts.push(said.join(", "));
      meta.textContent = parts.join(" · ");
      li.appendChild(meta);
      return li;
    }

    function render(state, upto) {
      while (shown < Math.min(upto, hits.length)) {
        list.appendChild(hit(hits[shown], state.profile));
        shown += 1;
      }
      more.hidden = shown >= hits.length;
    }

    function apply() {
      var state = readForm(form);
      remember(form);
      if (!active(state)) {
        results.hidden = true;
        days.hidden = false;
        status.textContent = failed ? "The search index could not be loaded." : "";
        return;
      }
      results.hidden = false;
      days.hidden = true;
      hits = items.filter(function (item) {
        return matches(item, state);
      });
      list.textContent = "";
      shown = 0;
      render(state, PAGE);
      var said = plural(hits.length, "paper") + " match";
      if (hits.length === 1) said += "es";
      if (failed) said += " (the search index could not be loaded in full)";
      else if (!done) said += " so far; still loading the index…";
      status.textContent = said + ".";
      if (!loading) load();
    }

    more.addEventListener("click", function () {
      render(readForm(form), shown + PAGE);
    });
    return apply;
  }

  function start() {
    var form = document.querySelector("[data-filters]");
    if (!form) return;
    var status = document.querySelector("[data-status]");
    form.hidden = false;
    restore(form);
    var apply = document.querySelector("[data-results]")
      ? archiveSearch(form, status)
      : pageFilter(form, status);
    var timer = null;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      apply();
    });
    form.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(apply, 120);
    });
    form.addEventListener("change", apply);
    if (active(readForm(form))) apply();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
