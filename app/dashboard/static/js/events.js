// A job's live events (GET /v1/jobs/{id}/events, Server-Sent Events on the session cookie): progress,
// metrics, log lines, then end. Pushed by the server; nothing here polls.

export function watchJob(id, handlers) {
  const es = new EventSource(`/v1/jobs/${encodeURIComponent(id)}/events`);
  const seen = new Set(); // "key@step": the stream starts from the run's first row on each (re)connection
  const on = (name, fn) => es.addEventListener(name, (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    fn(data);
  });
  on("progress", (job) => handlers.progress && handlers.progress(job));
  on("metrics", (rows) => {
    const fresh = rows.filter((r) => {
      const k = `${r.key}@${r.step}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    if (fresh.length && handlers.metrics) handlers.metrics(fresh);
  });
  on("log", (data) => handlers.log && handlers.log(data));
  on("end", (job) => {
    es.close();
    if (handlers.end) handlers.end(job);
  });
  return {
    // rows already shown (from GET .../metrics) are not drawn twice
    know(rows) { for (const r of rows) seen.add(`${r.key}@${r.step}`); },
    close() { es.close(); },
  };
}
