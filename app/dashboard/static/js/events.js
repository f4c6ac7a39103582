// A job's live events (GET /v1/jobs/{id}/events, Server-Sent Events on the session cookie): progress,
// metrics, log lines, then end. Pushed by the server; nothing here polls.

// logOffset: the bytes of the log the page has already (X-Log-Offset of GET .../log)
export function watchJob(id, handlers, { logOffset = 0 } = {}) {
  const es = new EventSource(`/v1/jobs/${encodeURIComponent(id)}/events?log_offset=${logOffset}`);
  // The stream starts from the run's first row on each (re)connection, and the page drew the (thinned)
  // history already: only steps past the last one seen of each metric are new.
  const last = {};
  const lastT = {};
  const on = (name, fn) => es.addEventListener(name, (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    fn(data);
  });
  on("progress", (job) => handlers.progress && handlers.progress(job));
  on("metrics", (rows) => {
    const fresh = rows.filter((r) => {
      if (r.step <= (last[r.key] ?? -Infinity)) return false;
      last[r.key] = r.step;
      return true;
    });
    // Rows carry no time: they arrive at most a poll interval after they were written, a flush's worth at a
    // time, so each metric's new rows are spread evenly since its previous ones rather than stacked at now.
    const now = Date.now();
    const byKey = {};
    for (const r of fresh) (byKey[r.key] = byKey[r.key] || []).push(r);
    for (const [key, list] of Object.entries(byKey)) {
      const from = lastT[key] ?? now - 500;
      list.forEach((r, i) => { r.t = from + ((now - from) * (i + 1)) / list.length; });
      lastT[key] = now;
    }
    if (fresh.length && handlers.metrics) handlers.metrics(fresh);
  });
  on("log", (data) => handlers.log && handlers.log(data));
  on("end", (job) => {
    es.close();
    if (handlers.end) handlers.end(job);
  });
  return {
    // rows already shown (from GET .../metrics) are not drawn twice
    know(rows) { for (const r of rows) last[r.key] = Math.max(last[r.key] ?? -Infinity, r.step); },
    close() { es.close(); },
  };
}
