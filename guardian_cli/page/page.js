// tfstate-guardian's status page: the fleet, a state's history and diffs, held locks and the audit trail.
// Everything comes from the guardian's API through the page server (/api/...). Text from the API is untrusted
// (keys, lock holders, summaries): it is only ever inserted as text (textContent, text nodes), never as markup.
"use strict";

(() => {
  const FLEET_PAGE = 100;
  const VERSIONS_PAGE = 50;
  const EVENTS_PAGE = 50;
  const ACT_AS_STORAGE = "tfstate-guardian.act-as";
  const TOKEN_STORAGE = "tfstate-guardian.token";

  const $ = (id) => document.getElementById(id);

  // An element with attributes, listeners and children; a string child becomes a text node.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const dash = "—";
  const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  const orDash = (value) => (value === null || value === undefined || value === "" ? dash : String(value));

  // ---- the API -------------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.code = (body && body.error) || "http";
      this.body = body || {};
    }
  }

  // `tfguardian ui` prints a link with this run's token: kept (for links opened in other tabs, such as a message's
  // link to a state) and taken out of the address bar, then sent with every API call.
  function pageToken() {
    const given = new URLSearchParams(window.location.search).get("token");
    if (given) {
      try { window.localStorage.setItem(TOKEN_STORAGE, given); } catch (error) { /* storage off: this tab only */ }
      window.history.replaceState(null, "", window.location.pathname + window.location.hash);
      pageToken.value = given;
    }
    if (pageToken.value) return pageToken.value;
    try { return window.localStorage.getItem(TOKEN_STORAGE) || ""; } catch (error) { return ""; }
  }

  function actAs() {
    const value = $("act-as").value.trim();
    return value.startsWith("arn:") ? value : "";
  }

  async function api(method, route, params, body, headers) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
    }
    const sent = { Accept: "application/json", ...(headers || {}) };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    if (actAs()) sent["X-Guardian-Act-As"] = actAs();
    if (pageToken()) sent["X-Guardian-Page-Token"] = pageToken();
    if (currentBackend && !query.has("backend")) query.set("backend", currentBackend);
    const url = `/api/${route}${query.toString() ? `?${query}` : ""}`;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "same-origin",
        redirect: "error",
      });
    } catch (error) {
      throw new ApiError(0, {
        error: "unreachable",
        message: "The page server does not answer: is `tfguardian ui` (or `make run`) still running?",
      });
    }
    let answer;
    try {
      answer = await response.json();
    } catch (error) {
      answer = { error: "http", message: `HTTP ${response.status}` };
    }
    if (!response.ok) throw new ApiError(response.status, answer);
    return answer;
  }

  // ---- what people read -----------------------------------------------------------------------------------------

  let said = 0;

  function say(text) {
    const status = $("status");
    const mine = ++said;
    status.textContent = "";
    // A fresh text node a moment later, so that a screen reader announces the same words twice in a row too; the
    // note goes from the screen after a while (emptying a live region announces nothing).
    window.setTimeout(() => { if (mine === said) status.textContent = text; }, 30);
    window.setTimeout(() => { if (mine === said) status.textContent = ""; }, 8000);
  }

  function warn(text) {
    $("alert").textContent = text;
  }

  function clearWarning() {
    $("alert").textContent = "";
  }

  function refusal(error) {
    if (!(error instanceof ApiError)) return `Something failed in the page: ${error}`;
    let text = `${error.message}`;
    if (error.body.rule) text += ` (rule: ${error.body.rule})`;
    const holder = error.body.lock;
    if (holder && typeof holder === "object") {
      text += ` Held by ${orDash(holder.who)} (${orDash(holder.operation)}, lock ID ${orDash(holder.id || holder.ID)}).`;
    }
    return `Refused (${error.code}): ${text}`;
  }

  function when(iso) {
    if (!iso) return dash;
    const moment = Date.parse(iso);
    const shown = String(iso).replace("T", " ").replace(/\.\d+/, "").replace(/Z$|\+00:00$/, " UTC");
    const node = el("time", { datetime: iso }, shown);
    if (Number.isNaN(moment)) return node;
    return el("span", {}, node, el("span", { class: "age" }, ` · ${ago((Date.now() - moment) / 1000)}`));
  }

  function ago(seconds) {
    return `${duration(seconds)} ago`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return dash;
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return `${s} s`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min`;
    if (s < 36 * 3600) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} days`;
  }

  function counts(changes) {
    if (!changes) return el("span", { class: "muted" }, dash);
    const label = `${changes.added} added, ${changes.changed} changed, ${changes.removed} removed`;
    return el(
      "span",
      { class: "counts", "aria-label": label, title: label },
      el("span", { class: "add" }, `+${changes.added}`), " ",
      el("span", { class: "chg" }, `~${changes.changed}`), " ",
      el("span", { class: "del" }, `−${changes.removed}`),
    );
  }

  function badge(text, kind) {
    return el("span", { class: `badge ${kind || ""}` }, text);
  }

  function emptyRow(table, text) {
    const columns = table.querySelectorAll("thead th").length;
    return el("tr", {}, el("td", { colspan: columns, class: "empty" }, text));
  }

  // The backend of the state on view: a state's routes name it (a guardian may watch several backends).
  let currentBackend = "";

  function stateHref(key, extra) {
    const backend = (extra && extra.backend) || currentBackend;
    const query = new URLSearchParams({ key, ...(extra || {}) });
    if (backend) query.set("backend", backend);
    else query.delete("backend");
    return `#/state?${query}`;
  }

  function routeHref(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) if (value) query.set(name, value);
    return `#${path}${query.toString() ? `?${query}` : ""}`;
  }

  function pager(nav, links) {
    nav.replaceChildren(...links.filter(Boolean).map(([text, href]) => el("a", { href, class: "button" }, text)));
  }

  function busy(view, on) {
    view.setAttribute("aria-busy", on ? "true" : "false");
  }

  // A view is drawn: no longer busy, and the count of views drawn (which tests wait on) goes up.
  function drawn(view) {
    busy(view, false);
    document.body.dataset.drawn = String(Number(document.body.dataset.drawn || 0) + 1);
  }

  // ---- views ------------------------------------------------------------------------------------------------------

  let generation = 0; // a view's answer that arrives after another view was asked for is dropped

  function show(name) {
    for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
    for (const link of document.querySelectorAll("nav[aria-label=Views] a")) {
      if (link.dataset.view === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    return $(`view-${name}`);
  }

  async function fleetView(params) {
    const view = show("fleet");
    document.title = "Fleet — tfstate-guardian";
    const prefix = params.get("prefix") || "";
    const workspace = params.get("workspace") || "";
    const limit = params.get("limit") || String(FLEET_PAGE);
    const next = params.get("next") || "";
    $("fleet-prefix").value = prefix;
    $("fleet-workspace").value = workspace;
    $("fleet-limit").value = ["25", "50", "100", "200"].includes(limit) ? limit : String(FLEET_PAGE);
    const mine = ++generation;
    busy(view, true);
    try {
      const answer = await api("GET", "states", { prefix, workspace, limit, next });
      if (mine !== generation) return;
      const table = $("fleet-table");
      const rows = answer.states.map(fleetRow);
      table.tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(table, "No states on this page.")]));
      const filters = [prefix && `prefix ${prefix}`, workspace && `workspace ${workspace}`].filter(Boolean);
      $("fleet-caption").textContent =
        `States${filters.length ? ` (${filters.join(", ")})` : ""}: ${rows.length} on this page` +
        `${next ? ", a later page" : ""}${answer.next ? ", more on the next page" : ""}`;
      const base = { prefix, workspace, limit: limit === String(FLEET_PAGE) ? "" : limit };
      pager($("fleet-pager"), [
        next && ["First page", routeHref("/", base)],
        answer.next && ["Next page", routeHref("/", { ...base, next: answer.next })],
      ]);
      say(`${count(rows.length, "state", "states")} shown${answer.next ? "; there are more on the next page" : ""}.`);
    } catch (error) {
      if (mine === generation) warn(refusal(error));
    } finally {
      if (mine === generation) drawn(view);
    }
  }

  function fleetRow(state) {
    const writer = state.writer || {};
    const lock = state.lock;
    return el(
      "tr",
      { class: lock ? "locked" : null },
      el("th", { scope: "row", class: "key" }, el("a", { href: stateHref(state.key, { backend: state.backend }) }, state.key)),
      el("td", {}, orDash(state.workspace)),
      el("td", { class: "num" }, orDash(state.serial)),
      el("td", {}, orDash(writer.who || writer.principal)),
      el("td", {}, when(state.last_written_at)),
      el("td", {}, lock ? [badge("locked", "warning"), " ", orDash(lock.who), lock.operation ? ` (${lock.operation})` : ""] : dash),
      el("td", {}, orDash(state.terraform_version)),
      el("td", { class: "num" }, orDash(state.resource_count)),
    );
  }

  let versionsShown = []; // the versions the table lists, for the diff and the rollback

  async function stateView(params) {
    const view = show("state");
    const key = params.get("key") || "";
    const next = params.get("next") || "";
    $("state-key").textContent = key;
    document.title = `${key} — tfstate-guardian`;
    $("state-events-link").setAttribute("href", routeHref("/events", { key }));
    $("diff").hidden = true;
    if (!key) {
      warn("No state named: the address needs #/state?key=<the state's S3 key>.");
      return;
    }
    const mine = ++generation;
    busy(view, true);
    try {
      const [fleet, versions] = await Promise.all([
        api("GET", "states", { prefix: key, limit: 1 }),
        api("GET", "states/versions", { key, limit: VERSIONS_PAGE, next }),
      ]);
      if (mine !== generation) return;
      const state = fleet.states.find((entry) => entry.key === key) || null;
      summary(state);
      versionsShown = versions.versions;
      const table = $("versions-table");
      const rows = versionsShown.map((version, index) => versionRow(key, version, index, state));
      table.tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(table, "No versions recorded.")]));
      const radios = (name) => table.querySelectorAll(`input[name=${name}]`);
      if (versionsShown.length > 1) {
        const to = params.get("to");
        const from = params.get("from");
        const pick = (name, id, fallback) => {
          const found = [...radios(name)].find((radio) => versionsShown[radio.value].version_id === id);
          (found || radios(name)[fallback]).checked = true;
        };
        pick("to", to, 0);
        pick("from", from, 1);
      }
      $("diff-button").disabled = versionsShown.length < 2;
      pager($("versions-pager"), [
        next && ["Newest versions", stateHref(key)],
        versions.next && ["Older versions", stateHref(key, { next: versions.next })],
      ]);
      say(`${key}: ${count(versionsShown.length, "version", "versions")} shown.`);
      if (params.get("from") && params.get("to") && versionsShown.length > 1) await diffChosen(key, false);
    } catch (error) {
      if (mine === generation) warn(refusal(error));
    } finally {
      if (mine === generation) drawn(view);
    }
  }

  function summary(state) {
    const list = $("state-summary");
    if (!state) {
      list.replaceChildren(el("dt", {}, "Recorded"), el("dd", {}, "not in the fleet listing (deleted, or not yet recorded)"));
      return;
    }
    const writer = state.writer || {};
    const lock = state.lock;
    const pairs = [
      ["Workspace", orDash(state.workspace)],
      ["Serial", orDash(state.serial)],
      ["Lineage", orDash(state.lineage)],
      ["Terraform", orDash(state.terraform_version)],
      ["Last writer", `${orDash(writer.who)}${writer.operation ? ` (${writer.operation})` : ""}`],
      ["S3 principal", orDash(writer.principal)],
      ["Last change", when(state.last_written_at)],
      ["Resources", orDash(state.resource_count)],
      ["Lock", lock ? el("span", {}, `held by ${orDash(lock.who)} `, el("a", { href: "#/locks" }, "see the locks")) : "not held"],
    ];
    list.replaceChildren(...pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  }

  function versionName(version) {
    return version.serial === null || version.serial === undefined
      ? `version ${version.version_id}`
      : `serial ${version.serial}`;
  }

  function versionRow(key, version, index, state) {
    const writer = version.writer || {};
    const changes = version.changes || {};
    const name = versionName(version);
    const restorable = version.kind === "written" && !version.current;
    return el(
      "tr",
      { class: version.current ? "current" : null },
      el("td", {}, el("input", { type: "radio", name: "from", value: index, "aria-label": `Compare from ${name}` })),
      el("td", {}, el("input", { type: "radio", name: "to", value: index, "aria-label": `Compare to ${name}` })),
      el("th", { scope: "row", class: "num" }, orDash(version.serial), version.current ? [" ", badge("current", "info")] : null),
      el("td", {}, when(version.written_at)),
      el("td", {}, version.kind === "written" ? "written" : badge(orDash(version.kind), "warning"),
        version.recorded === false ? [" ", badge("from S3", "")] : null),
      el("td", {}, orDash(writer.who)),
      el("td", {}, orDash(writer.operation)),
      el("td", { class: "principal" }, orDash(writer.principal)),
      el("td", {}, counts(changes.resources)),
      el("td", {}, counts(changes.outputs)),
      el("td", {}, restorable
        ? el("button", { type: "button", class: "rollback", onclick: (event) => previewRollback(key, version, state, event.currentTarget) },
          `Roll back to ${name}…`)
        : el("span", { class: "muted" }, version.current ? "current" : dash)),
    );
  }

  async function diffChosen(key, announce) {
    const form = $("diff-form");
    const from = form.querySelector("input[name=from]:checked");
    const to = form.querySelector("input[name=to]:checked");
    if (!from || !to) {
      warn("Choose a version in the From column and one in the To column.");
      return;
    }
    const before = versionsShown[from.value];
    const after = versionsShown[to.value];
    if (before.version_id === after.version_id) {
      warn("Choose two different versions to compare.");
      return;
    }
    clearWarning();
    const answer = await api("GET", "states/diff", { key, from: before.version_id, to: after.version_id });
    $("diff-title").textContent = `Changes from ${versionName(before)} to ${versionName(after)}`;
    $("diff-resources").replaceChildren(...changeLists("resources", answer.resources, "resource instances"));
    $("diff-outputs").replaceChildren(...changeLists("outputs", answer.outputs, "outputs"));
    $("diff").hidden = false;
    const hash = stateHref(key, { from: before.version_id, to: after.version_id });
    if (location.hash !== hash) history.replaceState(null, "", hash);
    const r = answer.resources;
    const o = answer.outputs;
    if (announce) {
      $("diff-title").focus();
      say(`Resources: ${r.added.length} added, ${r.changed.length} changed, ${r.removed.length} removed. ` +
        `Outputs: ${o.added.length} added, ${o.changed.length} changed, ${o.removed.length} removed.`);
    }
  }

  function changeLists(kind, lists, what, level) {
    const parts = [];
    for (const [change, sign] of [["added", "+"], ["changed", "~"], ["removed", "−"]]) {
      const names = (lists && lists[change]) || [];
      parts.push(el(level || "h4", {}, `${change[0].toUpperCase()}${change.slice(1)} (${names.length})`));
      parts.push(names.length
        ? el("ul", { id: `diff-${kind}-${change}`, class: `changes ${change}`, "aria-label": `${what} ${change}` },
          names.map((name) => el("li", {}, el("span", { class: "sign", "aria-hidden": "true" }, sign), " ", el("code", {}, name))))
        : el("p", { id: `diff-${kind}-${change}`, class: "muted" }, "none"));
    }
    if (lists && lists.truncated) parts.push(el("p", { class: "muted" }, "The lists are trimmed; the counts above are the lists' lengths."));
    return parts;
  }

  async function locksView() {
    const view = show("locks");
    document.title = "Locks — tfstate-guardian";
    const mine = ++generation;
    busy(view, true);
    try {
      const answer = await api("GET", "locks");
      if (mine !== generation) return;
      const table = $("locks-table");
      const rows = answer.locks.map(lockRow);
      table.tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(table, "No lock is held.")]));
      say(`${count(rows.length, "lock", "locks")} held.`);
    } catch (error) {
      if (mine === generation) warn(refusal(error));
    } finally {
      if (mine === generation) drawn(view);
    }
  }

  const VERDICTS = { release: "danger", stale: "warning", waiting: "warning", unreadable: "danger", fresh: "info", alive: "ok", protected: "info" };

  function lockRow(entry) {
    const lock = entry.lock || {};
    return el(
      "tr",
      {},
      el("th", { scope: "row", class: "key" }, el("a", { href: stateHref(entry.key, { backend: entry.backend }) }, entry.key)),
      el("td", {}, orDash(entry.source)),
      el("td", { class: "id" }, el("code", {}, orDash(lock.id))),
      el("td", {}, orDash(lock.who)),
      el("td", {}, orDash(lock.operation)),
      el("td", { class: "num" }, duration(entry.age_s)),
      el("td", {}, badge(orDash(entry.verdict), VERDICTS[entry.verdict] || ""), evidence(entry.evidence)),
      el("td", {}, orDash(entry.action)),
      el("td", {}, lock.id
        ? el("button", { type: "button", class: "unlock", onclick: (event) => previewUnlock(entry, event.currentTarget) }, "Force-unlock…")
        : dash),
    );
  }

  function evidence(found) {
    if (!found || typeof found !== "object") return null;
    const items = Object.entries(found).filter(([name]) => name !== "age_s");
    if (!items.length) return null;
    const shown = (name, value) => {
      if (name.endsWith("_s") && typeof value === "number") return `${name.slice(0, -2).replaceAll("_", " ")}: ${duration(value)}`;
      return `${name.replaceAll("_", " ")}: ${value !== null && typeof value === "object" ? JSON.stringify(value) : String(value)}`;
    };
    return el("ul", { class: "evidence" }, items.map(([name, value]) => el("li", {}, shown(name, value))));
  }

  async function eventsView(params) {
    const view = show("events");
    document.title = "Audit trail — tfstate-guardian";
    const names = ["key", "prefix", "type", "actor", "since", "until"];
    const filters = {};
    for (const name of names) {
      filters[name] = params.get(name) || "";
      $(`events-${name}`).value = filters[name];
    }
    const next = params.get("next") || "";
    const mine = ++generation;
    busy(view, true);
    try {
      const answer = await api("GET", "events", { ...filters, limit: EVENTS_PAGE, next });
      if (mine !== generation) return;
      const table = $("events-table");
      const rows = answer.events.map(eventRow);
      table.tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(table, "No events on this page.")]));
      pager($("events-pager"), [
        next && ["Newest events", routeHref("/events", filters)],
        answer.next && ["Older events", routeHref("/events", { ...filters, next: answer.next })],
      ]);
      say(`${count(rows.length, "event", "events")} shown${answer.next ? "; older ones on the next page" : ""}.`);
    } catch (error) {
      if (mine === generation) warn(refusal(error));
    } finally {
      if (mine === generation) drawn(view);
    }
  }

  const SEVERITIES = { critical: "danger", warning: "warning", info: "info" };

  function eventRow(event) {
    return el(
      "tr",
      { class: `severity-${event.severity}` },
      el("td", {}, when(event.occurred_at)),
      el("td", {}, el("code", {}, orDash(event.type))),
      el("td", {}, badge(orDash(event.severity), SEVERITIES[event.severity] || "")),
      el("th", { scope: "row", class: "key" }, el("a", { href: stateHref(event.key, { backend: event.backend }) }, event.key)),
      el("td", {}, orDash(event.caller || event.who || event.principal)),
      el("td", { class: "summary-text" }, orDash(event.summary)),
      el("td", {}, orDash(event.reason)),
    );
  }

  // ---- the two actions: a preview first, then a confirmation naming the state and the serial ------------------

  const dialog = () => $("confirm");
  let invoker = null;
  let onConfirm = null;

  function openDialog(title, what, button) {
    invoker = button || document.activeElement;
    $("confirm-title").textContent = title;
    $("confirm-what").textContent = what;
    $("confirm-preview").replaceChildren();
    $("confirm-result").textContent = "";
    $("confirm-result").removeAttribute("role");
    $("confirm-result").setAttribute("role", "status");
    $("confirm-reason").value = "";
    $("confirm-reason-field").hidden = true;
    $("confirm-go").hidden = true;
    $("confirm-go").disabled = false;
    $("confirm-cancel").textContent = "Cancel";
    onConfirm = null;
    if (!dialog().open) dialog().showModal();
    $("confirm-cancel").focus();
  }

  function ready(label, action) {
    $("confirm-reason-field").hidden = false;
    $("confirm-go").textContent = label;
    $("confirm-go").hidden = false;
    onConfirm = action;
    $("confirm-reason").focus(); // not the button: an Enter pressed too soon must not act
  }

  function finished(text, failed) {
    const result = $("confirm-result");
    result.setAttribute("role", failed ? "alert" : "status");
    result.textContent = text;
    $("confirm-go").hidden = true;
    $("confirm-reason-field").hidden = true;
    $("confirm-cancel").textContent = "Close";
    $("confirm-cancel").focus();
    (failed ? warn : say)(text);
  }

  function idempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function previewRollback(key, version, state, button) {
    const name = versionName(version);
    openDialog(`Roll back ${key} to ${name}?`, `Looking at what restoring ${name} would change (a dry run)…`, button);
    const target = { key, version_id: version.version_id };
    const preview = async (allowLineage) => {
      const body = { ...target, dry_run: true, ...(allowLineage ? { allow_lineage_change: true } : {}) };
      try {
        return await api("POST", "rollback", null, body);
      } catch (error) {
        if (error.code === "lineage_change" && !allowLineage) {
          const box = el("input", { type: "checkbox", id: "confirm-lineage" });
          const again = el("button", { type: "button", onclick: async () => { if (box.checked) await look(true); } }, "Preview again");
          $("confirm-preview").replaceChildren(
            el("p", { class: "warning-text" }, refusal(error)),
            el("p", {}, box, " ", el("label", { for: "confirm-lineage" }, "Restore a version of another lineage anyway")),
            again,
          );
          again.focus();
          return null;
        }
        finished(refusal(error), true);
        return null;
      }
    };
    const look = async (allowLineage) => {
      const dry = await preview(allowLineage);
      if (!dry) return;
      const before = dry.serial.before;
      const after = dry.serial.after;
      $("confirm-what").textContent =
        `${key} is at serial ${orDash(before)}. The rollback writes the state of ${name} (version ${version.version_id}) ` +
        `as serial ${orDash(after)}, under Terraform's locks, with its digest fixed; the next terraform plan just works.`;
      $("confirm-preview").replaceChildren(
        el("h3", {}, `What changes, from serial ${orDash(before)} to the state of ${name}`),
        el("div", { class: "diff-grid" },
          el("div", {}, el("h4", {}, "Resources"), changeLists("preview-resources", dry.diff.resources, "resource instances", "h5")),
          el("div", {}, el("h4", {}, "Outputs"), changeLists("preview-outputs", dry.diff.outputs, "outputs", "h5"))),
      );
      const idempotency = idempotencyKey(); // a retry of this one confirmation never rolls back twice
      ready(`Roll back ${key} to ${name}`, async () => {
        $("confirm-go").disabled = true;
        const reason = $("confirm-reason").value.trim();
        const body = { ...target, reason, ...(allowLineage ? { allow_lineage_change: true } : {}) };
        try {
          const done = await api("POST", "rollback", null, body, { "Idempotency-Key": idempotency });
          finished(
            `Rolled back ${key} to ${name}: serial ${orDash(done.serial.before)} → ${orDash(done.serial.after)}, ` +
            `new version ${done.new_version_id}. ${done.notified ? "state.restored was notified." : "The notification failed; the rollback is done."}`,
            false,
          );
          refreshAfterAction();
        } catch (error) {
          finished(refusal(error), true);
        }
      });
    };
    await look(false);
  }

  async function previewUnlock(entry, button) {
    const key = entry.key;
    const lockId = (entry.lock || {}).id;
    openDialog(`Force-unlock ${key}?`, "Looking at the lock again…", button);
    let fresh;
    let fleet;
    try {
      [fresh, fleet] = await Promise.all([api("GET", "locks"), api("GET", "states", { prefix: key, limit: 1 })]);
    } catch (error) {
      finished(refusal(error), true);
      return;
    }
    const held = fresh.locks.filter((lock) => lock.key === key && (lock.lock || {}).id === lockId);
    if (!held.length) {
      finished(`The lock ${lockId} of ${key} is no longer held: nothing to release.`, false);
      refreshAfterAction();
      return;
    }
    const state = fleet.states.find((found) => found.key === key);
    const serial = state ? orDash(state.serial) : "unknown";
    const lock = held[0].lock;
    $("confirm-what").textContent =
      `${key} (serial ${serial}) is locked. Terraform never checks its lock again before it writes: if the holder ` +
      "still runs, releasing its lock lets a second writer in. Release it only if its holder is gone.";
    $("confirm-preview").replaceChildren(el("dl", { class: "summary" },
      el("dt", {}, "State"), el("dd", {}, key),
      el("dt", {}, "Serial now"), el("dd", {}, serial),
      el("dt", {}, "Lock ID"), el("dd", {}, el("code", {}, orDash(lock.id))),
      el("dt", {}, "Holder"), el("dd", {}, orDash(lock.who)),
      el("dt", {}, "Operation"), el("dd", {}, orDash(lock.operation)),
      el("dt", {}, "Taken"), el("dd", {}, orDash(lock.created)),
      el("dt", {}, "Held for"), el("dd", {}, duration(held[0].age_s)),
      el("dt", {}, "Released from"), el("dd", {}, held.map((found) => found.source).join(" and ")),
      el("dt", {}, "Reaper's verdict"), el("dd", {}, badge(orDash(held[0].verdict), VERDICTS[held[0].verdict] || ""), evidence(held[0].evidence)),
    ));
    ready(`Force-unlock ${key} at serial ${serial}`, async () => {
      $("confirm-go").disabled = true;
      try {
        const done = await api("DELETE", "locks", { key, lock_id: lockId, reason: $("confirm-reason").value.trim() });
        const left = (done.left || []).map((item) => `${item.source} left: ${item.reason}`).join("; ");
        finished(
          `Released the ${done.released.join(" and ")} lock of ${key} (serial ${serial}, lock ID ${lockId}). ` +
          `${done.notified ? "lock.force_released was notified." : "The notification failed; the lock is released."}` +
          `${left ? ` ${left}.` : ""}`,
          false,
        );
        refreshAfterAction();
      } catch (error) {
        finished(refusal(error), true);
      }
    });
  }

  let refreshWanted = false;

  function refreshAfterAction() {
    refreshWanted = true;
  }

  function closeDialog() {
    if (dialog().open) dialog().close();
  }

  // ---- routing: #/, #/state?key=…, #/locks, #/events ------------------------------------------------------------

  function route(moveFocus) {
    clearWarning();
    const hash = location.hash || "#/";
    if (!hash.startsWith("#/")) return;
    const at = hash.indexOf("?");
    const path = at < 0 ? hash.slice(1) : hash.slice(1, at);
    const params = new URLSearchParams(at < 0 ? "" : hash.slice(at + 1));
    currentBackend = path === "/state" ? params.get("backend") || "" : "";
    const views = { "/": fleetView, "/state": stateView, "/locks": locksView, "/events": eventsView };
    const view = views[path] || fleetView;
    if (!views[path]) warn(`There is no page at ${path}: showing the fleet.`);
    const rendered = view(params);
    if (moveFocus) {
      const heading = document.querySelector(".view:not([hidden]) h1");
      if (heading) heading.focus();
    }
    return rendered;
  }

  function submitFilters(form, path) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = {};
      for (const [name, value] of new FormData(form)) params[name] = String(value).trim();
      if (params.limit === String(FLEET_PAGE)) delete params.limit;
      const hash = routeHref(path, params);
      if (location.hash === hash) route(false);
      else location.hash = hash;
    });
  }

  function start() {
    pageToken();  // out of the address bar before anything else is shown
    const stored = window.sessionStorage ? sessionStorage.getItem(ACT_AS_STORAGE) : null;
    if (stored) {
      $("act-as").value = stored;
      $("act-as").closest("details").open = true;
    }
    $("act-as").addEventListener("change", () => {
      if (window.sessionStorage) sessionStorage.setItem(ACT_AS_STORAGE, $("act-as").value.trim());
      route(false);
    });
    $("skip").addEventListener("click", (event) => {
      event.preventDefault();
      $("main").focus();
    });
    submitFilters($("fleet-filter"), "/");
    submitFilters($("events-filter"), "/events");
    $("diff-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = new URLSearchParams(location.hash.slice(location.hash.indexOf("?") + 1)).get("key");
      try {
        await diffChosen(key, true);
      } catch (error) {
        warn(refusal(error));
      }
    });
    $("locks-refresh").addEventListener("click", () => locksView());
    $("confirm-cancel").addEventListener("click", closeDialog);
    $("confirm-go").addEventListener("click", () => { if (onConfirm) onConfirm(); });
    $("confirm-form").addEventListener("submit", (event) => event.preventDefault());
    dialog().addEventListener("close", () => {
      onConfirm = null;
      if (invoker && document.contains(invoker)) invoker.focus();
      if (refreshWanted) {
        refreshWanted = false;
        // The view is drawn again with what changed; the button that opened the dialog may be gone with it.
        Promise.resolve(route(false)).then(() => {
          if (!invoker || !document.contains(invoker)) {
            const heading = document.querySelector(".view:not([hidden]) h1");
            if (heading) heading.focus();
          }
        });
      }
    });
    window.addEventListener("hashchange", () => route(true));
    route(false);
  }

  start();
})();
