// A participatory budget's ballot, live: the running total of the chosen projects and what is left of the
// area's money (or how many approvals are left), announced politely to screen readers; a choice that would go
// over is not taken and the reason is said at once. The server checks the same rule: without this script the
// form is a plain form and an over-budget ballot comes back with the error and the choices kept.

const form = document.querySelector("form#ballot");

if (form) {
  const money = Number(form.dataset.money || 0);
  const most = Number(form.dataset.approvals || 0);
  const boxes = [...form.querySelectorAll("input[type=checkbox][name=project]")];
  const total = document.getElementById("ballot-total");
  const refusal = document.getElementById("ballot-refusal");
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, key) => values[key] ?? "");
  const cost = (box) => Number(box.dataset.cost || 0);
  const chosen = () => boxes.filter((box) => box.checked);

  const show = () => {
    const picked = chosen();
    const spent = picked.reduce((sum, box) => sum + cost(box), 0);
    total.textContent = money
      ? fill(total.dataset.template, { spent: numbers.format(spent), left: numbers.format(money - spent) })
      : fill(total.dataset.template, { count: picked.length, most });
    total.dataset.spent = String(spent);
  };

  form.addEventListener("change", (event) => {
    const box = event.target;
    if (!boxes.includes(box)) return;
    refusal.textContent = "";
    refusal.hidden = true;
    if (box.checked) {
      const picked = chosen();
      const spent = picked.reduce((sum, one) => sum + cost(one), 0);
      if (money && spent > money) {
        box.checked = false;
        const left = money - (spent - cost(box));
        refusal.textContent = fill(form.dataset.over, {
          title: box.dataset.title,
          cost: numbers.format(cost(box)),
          left: numbers.format(left),
        });
      } else if (most && picked.length > most) {
        box.checked = false;
        refusal.textContent = fill(form.dataset.tooMany, { count: most });
      }
      refusal.hidden = !refusal.textContent;
    }
    show();
  });
  show();
}
