/* llmdemo's evaluation site (written by `python -m eval site`). Every text from a run goes into the page as
   text (textContent), never as HTML; only the plots, made by eval/site.py from numbers and escaped names,
   are SVG markup. No request leaves the folder. */
(function () {
  "use strict";
  var D = window.SITE || {};
  var PAGE = 50;  // examples per page: a 5,000-example run renders 50 rows at a time
  var T = {
    en: {
      title: "Evaluation runs", all: "← all runs", lang: "中文", generated: "Generated {d}",
      group: "{task} on {data}", main: "Main metric {m} ({dir} is better).", higher: "higher", lower: "lower",
      run: "run", source: "source", model: "model", backend: "backend", engine: "engine", settings: "settings",
      date: "date (UTC)", n: "n", metric: "metric", value: "value", ci: "95% interval", data: "data",
      folder: "folder", signatures: "signatures", template: "prompt", counts: "examples",
      countsv: "{s} scored · {f} failed · {e} empty", notes: "Notes", examples: "Examples",
      filter: "Filter by text (id, input, output, reference)", sort: "Sort", by_data: "data order",
      by_low: "score: lowest first", by_high: "score: highest first", by_change: "largest change first",
      b_better: "B better first", a_better: "A better first", only_changed: "changed only",
      showing: "{a}–{b} of {n}", of_all: " (of {n})", none: "No example matches.", prev: "← previous",
      next: "next →", id: "id", input: "input", output: "output", reference: "reference", score: "score",
      prompt: "prompt", scores: "scores", pick: "Two runs side by side", a: "A", b: "B", go: "Side by side",
      same: "Pick two different runs.", one_run: "One run of this task and data: nothing to set beside it.",
      pair_title: "{task}: two runs side by side", shared: "{n} examples in both runs; {a} only in A, {b} only in B.",
      delta: "B − A", delta_ci: "95% interval of B − A", p: "p-value", test: "test",
      no_test: "no paired test (not a mean of per-example scores)", votes: "Blind votes (Compare tab)",
      rank: "rank", contestant: "contestant", rating: "rating", battles: "battles", wlt: "W / L / T",
      preliminary: "preliminary ({n} votes)", skipped: "Skipped", lmeval: "lm-eval",
      lmeval_note: "lm-eval's run: metrics as lm-eval reported them, not re-scored here.",
      per_example: "Per-example score: {k}", no_per_example: "This task has no per-example score.",
      capped: "Too many runs of one task: side-by-side pages were written for the first pairs only.",
      runs: "Runs", page_of: "page {p} of {n}", more: "all about this run"
    },
    zh: {
      title: "评测运行", all: "← 全部运行", lang: "English", generated: "生成于 {d}",
      group: "{task}（数据：{data}）", main: "主要指标 {m}（{dir}为好）。", higher: "越高", lower: "越低",
      run: "运行", source: "来源", model: "模型", backend: "后端", engine: "引擎", settings: "设置",
      date: "日期（UTC）", n: "数量", metric: "指标", value: "数值", ci: "95% 区间", data: "数据",
      folder: "文件夹", signatures: "签名", template: "提示", counts: "样例",
      countsv: "已评分 {s} · 失败 {f} · 空输出 {e}", notes: "说明", examples: "样例",
      filter: "按文字筛选（编号、输入、输出、参考）", sort: "排序", by_data: "数据顺序",
      by_low: "分数从低到高", by_high: "分数从高到低", by_change: "变化最大的在前",
      b_better: "B 更好的在前", a_better: "A 更好的在前", only_changed: "只看有变化的",
      showing: "第 {a}–{b} 条，共 {n} 条", of_all: "（全部 {n} 条）", none: "没有匹配的样例。", prev: "← 上一页",
      next: "下一页 →", id: "编号", input: "输入", output: "输出", reference: "参考", score: "分数",
      prompt: "提示", scores: "各项分数", pick: "两次运行并排对比", a: "A", b: "B", go: "并排对比",
      same: "请选两次不同的运行。", one_run: "此任务和数据只有一次运行，无可对比。",
      pair_title: "{task}：两次运行并排对比", shared: "两次运行共有 {n} 个样例；仅 A 有 {a} 个，仅 B 有 {b} 个。",
      delta: "B − A", delta_ci: "B − A 的 95% 区间", p: "p 值", test: "检验",
      no_test: "无配对检验（不是逐样例分数的均值）", votes: "盲评投票（对比标签页）",
      rank: "名次", contestant: "参赛者", rating: "评分", battles: "对局", wlt: "胜 / 负 / 平",
      preliminary: "初步（{n} 票）", skipped: "已跳过", lmeval: "lm-eval",
      lmeval_note: "lm-eval 的运行：指标为 lm-eval 报告的数值，此处未重新评分。",
      per_example: "逐样例分数：{k}", no_per_example: "此任务没有逐样例分数。",
      capped: "同一任务的运行过多：只为前面的运行对生成了并排页面。",
      runs: "运行", page_of: "第 {p} / {n} 页", more: "这次运行的全部信息"
    }
  };
  var saved = null;
  try { saved = window.localStorage.getItem("llmdemo-site-lang"); } catch (e) { /* storage off */ }
  var lang = saved || ((navigator.language || "").toLowerCase().indexOf("zh") === 0 ? "zh" : "en");

  function t(k, vars) {
    var s = (T[lang] && T[lang][k]) || T.en[k] || k;
    return s.replace(/\{(\w+)\}/g, function (_, v) { return vars && vars[v] !== undefined ? String(vars[v]) : ""; });
  }
  function el(tag, props) {
    var e = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        var v = props[k];
        if (v === undefined || v === null) return;
        if (k === "text") e.textContent = v;
        else if (k === "cls") e.className = v;
        else if (k.indexOf("on") === 0) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function num(v, d) {
    if (typeof v !== "number" || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (d === undefined) d = a >= 100 ? 1 : a >= 1 ? 2 : 3;
    return v.toFixed(d);
  }
  function interval(ci) { return ci && ci.length === 2 ? "[" + num(ci[0]) + ", " + num(ci[1]) + "]" : ""; }
  function short(s, n) { s = String(s === null || s === undefined ? "" : s); return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  function signed(v) { return typeof v === "number" && isFinite(v) ? (v > 0 ? "+" : "") + num(v) : "–"; }

  function table(headers, rows, opts) {
    opts = opts || {};
    var tb = el("table", { cls: opts.cls || "" });
    var head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", { cls: h.num ? "num" : "" }, h.label || h)); });
    tb.appendChild(el("thead", null, head));
    var body = el("tbody");
    rows.forEach(function (r) { body.appendChild(r); });
    tb.appendChild(body);
    return el("div", { cls: "scroll" }, tb);
  }
  function tr(cells) {
    var r = el("tr");
    cells.forEach(function (c) {
      var td = el("td", { cls: c && c.cls ? c.cls : "" });
      var v = c && typeof c === "object" && !(c instanceof Node) ? c.v : c;
      if (v instanceof Node) td.appendChild(v); else td.textContent = v === undefined || v === null ? "" : String(v);
      r.appendChild(td);
    });
    return r;
  }

  function topbar(app, back) {
    var b = el("div", { cls: "bar" },
      back ? el("a", { href: "index.html", id: "back" }, t("all")) : el("span", { cls: "muted" }, "llmdemo"),
      el("button", { id: "lang", type: "button", onclick: function () {
        lang = lang === "zh" ? "en" : "zh";
        try { window.localStorage.setItem("llmdemo-site-lang", lang); } catch (e) { /* storage off */ }
        render();
      } }, t("lang")));
    app.appendChild(b);
  }

  function facts(h) {
    var dl = el("dl", { cls: "facts" });
    function add(k, v) { if (v !== undefined && v !== null && v !== "") { dl.appendChild(el("dt", null, t(k))); dl.appendChild(el("dd", null, String(v))); } }
    add("source", h.source === "lm-eval" ? t("lmeval") : "llmdemo");
    add("data", h.data); add("model", h.model); add("backend", h.backend); add("engine", h.engine);
    add("settings", h.settings); add("date", h.date); add("folder", h.folder);
    add("counts", t("countsv", { s: h.counts.scored, f: h.counts.failed, e: h.counts.empty }));
    var sig = Object.keys(h.signatures || {}).map(function (k) { return k + ": " + h.signatures[k]; }).join(" · ");
    add("signatures", sig); add("template", h.prompt_template);
    return dl;
  }

  function metricsTable(h) {
    var names = Object.keys(h.metrics || {});
    return table([t("metric"), { label: t("value"), num: true }, { label: t("ci"), num: true }],
      names.map(function (k) { return tr([k, { v: num(h.metrics[k]), cls: "num" }, { v: interval(h.ci95[k]), cls: "num" }]); }));
  }

  // ------------------------------------------------------------------ the examples list (run and pair pages)
  function exampleList(app, all, cols, sorts, detail, extra) {
    var state = { q: "", sort: sorts[0][0], page: 0, changed: false };
    var box = el("div", { id: "examples" });
    var q = el("input", { type: "search", id: "filter", placeholder: t("filter"), "aria-label": t("filter") });
    var sel = el("select", { id: "sort", "aria-label": t("sort") });
    sorts.forEach(function (s) { sel.appendChild(el("option", { value: s[0] }, s[1])); });
    var ctrl = el("div", { cls: "controls" }, q, sel);
    var changedBox = null;
    if (extra) {
      changedBox = el("input", { type: "checkbox", id: "only-changed" });
      ctrl.appendChild(el("label", null, changedBox, " " + t("only_changed")));
    }
    var status = el("div", { cls: "muted", id: "showing", "aria-live": "polite" });
    var list = el("div");
    var pager = el("div", { cls: "pager" });
    box.appendChild(ctrl); box.appendChild(status); box.appendChild(list); box.appendChild(pager);
    app.appendChild(box);

    function rowsNow() {
      var s = state.q.toLowerCase();
      var rows = all.filter(function (e) {
        if (state.changed && !e.changed) return false;
        if (!s) return true;
        return cols.search.some(function (f) { return String(e[f] === undefined || e[f] === null ? "" : e[f]).toLowerCase().indexOf(s) >= 0; });
      });
      var cmp = sorts.filter(function (x) { return x[0] === state.sort; })[0][2];
      if (cmp) rows = rows.map(function (e, i) { return [e, i]; }).sort(function (x, y) { return cmp(x[0], y[0]) || x[1] - y[1]; })
        .map(function (x) { return x[0]; });
      return rows;
    }
    function draw() {
      var rows = rowsNow();
      var pages = Math.max(1, Math.ceil(rows.length / PAGE));
      if (state.page >= pages) state.page = pages - 1;
      var a = state.page * PAGE, b = Math.min(rows.length, a + PAGE);
      status.textContent = rows.length ? t("showing", { a: a + 1, b: b, n: rows.length }) + (rows.length !== all.length ? t("of_all", { n: all.length }) : "")
        : t("none");
      var body = [];
      rows.slice(a, b).forEach(function (e) {
        var r = el("tr", { cls: "row", tabindex: "0", "data-id": e.id });
        cols.cells(e).forEach(function (c, i) {
          var td = el("td", { cls: c.cls || "", "data-label": cols.head[i].label || cols.head[i] });
          td.textContent = c.v === undefined || c.v === null ? "" : String(c.v);
          r.appendChild(td);
        });
        function toggle() {
          var next = r.nextSibling;
          if (next && next.classList && next.classList.contains("detail")) { next.remove(); r.classList.remove("open"); return; }
          var d = el("tr", { cls: "detail" }), td = el("td", { colspan: String(cols.head.length) });
          td.appendChild(detail(e)); d.appendChild(td); r.after(d); r.classList.add("open");
        }
        r.addEventListener("click", toggle);
        r.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); } });
        body.push(r);
      });
      list.replaceChildren(table(cols.head, body, { cls: "ex" }));
      var tb = list.querySelector("table");
      if (cols.widths) {
        var cg = el("colgroup");
        cols.widths.forEach(function (w) { cg.appendChild(el("col", { style: "width:" + w })); });
        tb.insertBefore(cg, tb.firstChild);
      }
      pager.replaceChildren(
        el("button", { type: "button", id: "prev", disabled: state.page === 0 ? "" : null, onclick: function () { state.page--; draw(); } }, t("prev")),
        el("span", { cls: "muted", id: "page" }, t("page_of", { p: state.page + 1, n: pages })),
        el("button", { type: "button", id: "next", disabled: state.page >= pages - 1 ? "" : null, onclick: function () { state.page++; draw(); } }, t("next")));
    }
    q.addEventListener("input", function () { state.q = q.value.trim(); state.page = 0; draw(); });
    sel.addEventListener("change", function () { state.sort = sel.value; state.page = 0; draw(); });
    if (changedBox) changedBox.addEventListener("change", function () { state.changed = changedBox.checked; state.page = 0; draw(); });
    draw();
  }

  function textBlock(label, v) {
    if (v === undefined || v === null || v === "") return null;
    return el("div", null, el("h4", null, label), el("div", { cls: "text" }, String(v)));
  }
  function note(n) {  // after "Per-example score: margin": what it means, then the sentence's end
    if (lang === "zh") return (n ? "（" + n[1] + "）" : "") + "。";
    return (n ? " (" + n[0] + ")" : "") + ".";
  }
  function scoresLine(s) {
    return Object.keys(s || {}).map(function (k) { return k + " " + num(s[k]); }).join(" · ");
  }
  function byScore(sign) {
    return function (x, y) {
      var a = x.score, b = y.score;
      if (a === null || a === undefined) return (b === null || b === undefined) ? 0 : 1;
      if (b === null || b === undefined) return -1;
      return sign * (a - b);
    };
  }

  // ------------------------------------------------------------------ pages
  function indexPage(app) {
    app.appendChild(el("h1", null, t("title")));
    app.appendChild(el("p", { cls: "muted" }, t("generated", { d: D.generated })));
    if (D.pairs_capped) app.appendChild(el("p", { cls: "note" }, t("capped")));
    (D.groups || []).forEach(function (g, gi) {
      var sec = el("section", { cls: "group", id: "group-" + gi });
      sec.appendChild(el("h2", null, t("group", { task: g.task, data: g.data })));
      sec.appendChild(el("p", { cls: "muted" }, t("main", { m: g.main_metric, dir: g.higher_is_better ? t("higher") : t("lower") })));
      (g.notes || []).forEach(function (n) { sec.appendChild(el("p", { cls: "note" }, n)); });
      var head = [t("run"), t("model"), t("backend"), t("settings"), t("date"), { label: t("n"), num: true }]
        .concat(g.metrics.map(function (m) { return { label: m, num: true }; }));
      sec.appendChild(table(head, g.runs.map(function (r) {
        var link = el("a", { href: r.page, cls: "runlink", title: r.label }, short(r.name, 60));
        var set = el("span", { title: r.settings }, short(r.settings, 90));
        var cells = [{ v: el("span", null, link, r.source === "lm-eval" ? el("span", { cls: "tag" }, "lm-eval") : null) }, r.model,
          { v: el("span", { title: r.engine }, r.backend) }, { v: set }, r.date, { v: r.n, cls: "num" }];
        g.metrics.forEach(function (m) { cells.push({ v: num(r.metrics[m]) + " " + interval(r.ci95[m]), cls: "num" }); });
        return tr(cells);
      }), { cls: "board" }));
      var plot = el("div", { cls: "plot" });
      plot.innerHTML = g.svg;  // made by eval/site.py from numbers and escaped names
      sec.appendChild(plot);
      sec.appendChild(el("h3", null, t("pick")));
      if (g.runs.length < 2) sec.appendChild(el("p", { cls: "muted" }, t("one_run")));
      else {
        var sa = el("select", { cls: "pick-a", "aria-label": t("a") }), sb = el("select", { cls: "pick-b", "aria-label": t("b") });
        g.runs.forEach(function (r, i) {
          sa.appendChild(el("option", { value: r.key }, short(r.label, 80)));
          sb.appendChild(el("option", { value: r.key }, short(r.label, 80)));
          if (i === 1) sb.value = r.key;
        });
        sb.selectedIndex = 1;
        var msg = el("span", { cls: "muted", "aria-live": "polite" });
        var go = el("button", { type: "button", cls: "pick-go", onclick: function () {
          if (sa.value === sb.value) { msg.textContent = t("same"); return; }
          var p = g.pairs.filter(function (x) { return (x.a === sa.value && x.b === sb.value) || (x.a === sb.value && x.b === sa.value); })[0];
          if (!p) { msg.textContent = t("capped"); return; }
          window.location.href = p.page + (p.a === sa.value ? "" : "#swap");  // A is the run picked as A
        } }, t("go"));
        sec.appendChild(el("div", { cls: "controls" }, el("span", null, t("a")), sa, el("span", null, t("b")), sb, go, msg));
      }
      app.appendChild(sec);
    });
    if (D.votes) {
      var v = D.votes, sec = el("section", { id: "votes" }, el("h2", null, t("votes")));
      sec.appendChild(table([{ label: t("rank"), num: true }, t("contestant"), { label: t("rating"), num: true }, { label: t("ci"), num: true },
        { label: t("battles"), num: true }, t("wlt")], (v.ratings || []).map(function (r) {
        var few = r.battles < v.preliminary_battles;
        return tr([{ v: few ? "–" : r.rank, cls: "num" }, r.name, { v: num(r.rating, 0), cls: "num" },
          { v: few ? t("preliminary", { n: r.battles }) : num(r.lower, 0) + " – " + num(r.upper, 0), cls: "num" },
          { v: r.battles, cls: "num" }, r.wins + " / " + r.losses + " / " + r.ties]);
      })));
      if (v.note) sec.appendChild(el("p", { cls: "note" }, v.note));
      app.appendChild(sec);
    }
    if ((D.skipped || []).length) {
      app.appendChild(el("h2", null, t("skipped")));
      var ul = el("ul");
      D.skipped.forEach(function (s) { ul.appendChild(el("li", { cls: "note" }, s.path + ": " + s.why)); });
      app.appendChild(ul);
    }
  }

  function runPage(app) {
    var h = D.run;
    app.appendChild(el("h1", null, h.task + " · " + h.model));
    if (h.source === "lm-eval") app.appendChild(el("p", { cls: "note" }, t("lmeval_note")));
    app.appendChild(facts(h));
    app.appendChild(metricsTable(h));
    if ((h.notes || []).length) {
      app.appendChild(el("h3", null, t("notes")));
      h.notes.forEach(function (n) { app.appendChild(el("p", { cls: "note" }, n)); });
    }
    app.appendChild(el("h2", null, t("examples")));
    app.appendChild(el("p", { cls: "muted" }, h.per_example ? t("per_example", { k: h.per_example }) + note(h.per_example_note) : t("no_per_example")));
    var cols = {
      head: ["#", t("id"), t("input"), t("output"), { label: t("score"), num: true }],
      widths: ["5%", "12%", "38%", "33%", "12%"],
      search: ["id", "input", "output", "reference"],
      cells: function (e) { return [{ v: e._n + 1 }, { v: short(e.id, 40) }, { v: short(e.input, 200) }, { v: short(e.output, 200) }, { v: num(e.score), cls: "num" }]; }
    };
    var all = D.examples.map(function (e, i) { e._n = i; return e; });
    exampleList(app, all, cols, [["data", t("by_data"), null], ["low", t("by_low"), byScore(1)], ["high", t("by_high"), byScore(-1)]],
      function (e) {
        return el("div", null, textBlock(t("input"), e.input), textBlock(t("prompt"), e.prompt), textBlock(t("output"), e.output),
          textBlock(t("reference"), e.reference), textBlock(t("scores"), scoresLine(e.scores)));
      });
  }

  function swapPair() {
    // the page was written for one order; the test is symmetric (|B - A| over the same resamples), so the
    // other order is the same numbers with A and B exchanged and the deltas' signs turned
    if (D._swapped) return;
    D._swapped = true;
    var x = D.a; D.a = D.b; D.b = x;
    var te = D.test, o = te.only_a; te.only_a = te.only_b; te.only_b = o;
    te.tests.forEach(function (r) {
      var v = r.a; r.a = r.b; r.b = v; v = r.ci_a; r.ci_a = r.ci_b; r.ci_b = v; r.delta = -r.delta;
      if (r.delta_ci) r.delta_ci = [-r.delta_ci[1], -r.delta_ci[0]];
    });
    D.rows.forEach(function (r) {
      var v = r.a; r.a = r.b; r.b = v; v = r.score_a; r.score_a = r.score_b; r.score_b = v;
      if (typeof r.delta === "number") r.delta = -r.delta;
    });
  }

  function pairPage(app) {
    if (window.location.hash === "#swap") swapPair();
    var A = D.a, B = D.b;
    app.appendChild(el("h1", null, t("pair_title", { task: A.task })));
    function side(cls, name, h) {  // the run's name and settings; the rest folded (a phone reads the tests first)
      return el("div", { cls: cls }, el("h3", null, name + ": " + h.model),
        el("a", { href: "run-" + h.key + ".html" }, short(h.name || h.label, 80)),
        el("p", { cls: "muted" }, h.settings),
        el("details", null, el("summary", null, t("more")), facts(h)));
    }
    app.appendChild(el("div", { cls: "two" }, side("side-a", "A", A), side("side-b", "B", B)));
    var te = D.test;
    app.appendChild(el("p", { cls: "muted", id: "shared" }, t("shared", { n: te.ids, a: te.only_a, b: te.only_b })));
    app.appendChild(el("div", { id: "tests" }, table([t("metric"), { label: "A", num: true }, { label: "B", num: true }, { label: t("delta"), num: true },
      { label: t("delta_ci"), num: true }, { label: t("p"), num: true }, t("test")], te.tests.map(function (x) {
      return tr([x.metric, { v: num(x.a) + " " + interval(x.ci_a), cls: "num" }, { v: num(x.b) + " " + interval(x.ci_b), cls: "num" },
        { v: signed(x.delta), cls: "num " + (x.delta > 0 ? "up" : x.delta < 0 ? "down" : "") },
        { v: interval(x.delta_ci), cls: "num" }, { v: x.p === null || x.p === undefined ? "–" : x.p.toFixed(4), cls: "num pval" },
        x.test || t("no_test")]);
    }))));
    app.appendChild(el("h2", null, t("examples")));
    app.appendChild(el("p", { cls: "muted" }, D.per_example ? t("per_example", { k: D.per_example }) + note(D.per_example_note) : t("no_per_example")));
    var cols = {
      head: [t("id"), t("input"), "A", "B", { label: t("score") + " A", num: true }, { label: t("score") + " B", num: true }, { label: t("delta"), num: true }],
      widths: ["9%", "21%", "25%", "25%", "7%", "7%", "6%"],
      search: ["id", "input", "a", "b", "reference"],
      cells: function (r) {
        return [{ v: short(r.id, 40) }, { v: short(r.input, 160) }, { v: short(r.a, 200) }, { v: short(r.b, 200) },
          { v: num(r.score_a), cls: "num" }, { v: num(r.score_b), cls: "num" },
          { v: signed(r.delta), cls: "num delta " + (r.delta > 0 ? "up" : r.delta < 0 ? "down" : "") }];
      }
    };
    function d(r) { return typeof r.delta === "number" ? r.delta : 0; }
    var all = D.rows.map(function (r, i) { r._n = i; return r; });
    exampleList(app, all, cols, [["change", t("by_change"), null], ["b", t("b_better"), function (x, y) { return d(y) - d(x); }],
      ["a", t("a_better"), function (x, y) { return d(x) - d(y); }]],
      function (r) {
        return el("div", null, textBlock(t("input"), r.input), textBlock(t("prompt"), r.prompt),
          el("div", { cls: "two" }, textBlock("A", r.a), textBlock("B", r.b)), textBlock(t("reference"), r.reference));
      }, true);
  }

  function render() {
    var app = document.getElementById("app");
    app.replaceChildren();
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    topbar(app, D.kind !== "index");
    if (D.kind === "index") indexPage(app);
    else if (D.kind === "run") runPage(app);
    else if (D.kind === "pair") pairPage(app);
  }
  render();
})();
