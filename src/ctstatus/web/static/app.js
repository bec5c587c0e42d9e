// Problems table: filter by CA, code, status and text; sort by clicking a header.
(function () {
  const table = document.getElementById("problems");
  if (!table) return;
  const controls = document.querySelectorAll("[data-filter]");
  const rows = () => Array.from(table.tBodies[0].querySelectorAll("tr.problem"));
  function apply() {
    const want = {};
    controls.forEach((c) => (want[c.dataset.filter] = c.value.trim().toLowerCase()));
    let shown = 0;
    rows().forEach((row) => {
      const evidence = row.nextElementSibling;
      const text = (row.textContent + evidence.textContent).toLowerCase();
      const ok =
        (!want.ca || row.dataset.ca.toLowerCase() === want.ca) &&
        (!want.code || row.dataset.code.toLowerCase() === want.code) &&
        (!want.status || row.dataset.status === want.status) &&
        (!want.text || text.includes(want.text));
      row.hidden = evidence.hidden = !ok;
      if (ok) shown++;
    });
    const label = document.getElementById("shown");
    if (label) label.textContent = shown + " shown";
  }
  controls.forEach((c) => c.addEventListener("input", apply));
  table.querySelectorAll("th[data-sort]").forEach((th, index) => {
    let ascending = true;
    th.addEventListener("click", () => {
      const body = table.tBodies[0];
      const pairs = rows().map((row) => [row, row.nextElementSibling]);
      const key = (row) => {
        const cell = row.cells[index];
        return th.dataset.sort === "num" ? parseFloat(cell.dataset.value || "0") : cell.textContent.trim();
      };
      pairs.sort((a, b) => (key(a[0]) > key(b[0]) ? 1 : key(a[0]) < key(b[0]) ? -1 : 0) * (ascending ? 1 : -1));
      ascending = !ascending;
      pairs.forEach(([row, evidence]) => body.append(row, evidence));
    });
  });
  apply();
})();
