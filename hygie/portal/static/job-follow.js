// This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
// distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
// A queued or running analysis: its page follows the job without reloading itself. An automatic refresh that the
// person cannot stop fails WCAG 2.2.1 (and moves a screen reader back to the top every time); instead, every few
// seconds this script fetches the same page, and only when the job's state has changed does it swap the page's
// content and say so in a status region. A button stops and restarts it. Without scripts, the page offers a link.
const follow = document.getElementById("suivi-analyse");
if (follow) {
  const every = 1000 * Number(follow.dataset.every || "2");
  const button = document.getElementById("suivi-pause");
  const said = document.getElementById("suivi-annonce");
  let timer = null;

  const start = () => {
    timer = setInterval(poll, every);
    button.textContent = "Arrêter la mise à jour automatique";
    button.setAttribute("aria-pressed", "false");
  };
  const stop = () => {
    clearInterval(timer);
    timer = null;
    button.textContent = "Reprendre la mise à jour automatique";
    button.setAttribute("aria-pressed", "true");
  };

  async function poll() {
    let response;
    try {
      response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch {
      return; // the server is away for a moment: try again at the next tick
    }
    if (!response.ok || timer === null) return;
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    const now = next.getElementById("statut-analyse");
    const shown = document.getElementById("statut-analyse");
    if (!now || !shown || now.textContent === shown.textContent) return;
    clearInterval(timer);
    timer = null;
    const page = document.getElementById("page-analyse");
    page.replaceWith(document.importNode(next.getElementById("page-analyse"), true));
    said.textContent = `L'analyse a changé d'état : ${now.textContent.trim()}.`;
  }

  follow.hidden = false;
  document.getElementById("suivi-sans-script").hidden = true;
  button.addEventListener("click", () => (timer === null ? start() : stop()));
  start();
}
