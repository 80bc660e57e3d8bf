// This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
// distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
// The anonymous "am I in it?" check, run in the citizen's browser: the NIR never leaves this file.
//
// RFC 9497 VOPRF, ristretto255-SHA512, with the audited @noble/curves implementation (vendored by
// scripts/vendor-noble). What goes over the wire: a blinded element (uniformly random whatever the NIR),
// then the first few bits of a tag derived from OPRF(server key, NIR). The same protocol as
// hygie/breach/check_client.py; see hygie/breach/oprf.py for the server's side and docs/breach.md for why.
import { ristretto255_oprf as suite } from "./noble/curves/ed25519.js";
import { sha256 } from "./noble/hashes/sha2.js";

const INPUT_LABEL = "hygie/nir|";
const TAG_LABEL = "hygie/breach-check-tag/v1|";
const TAG_BYTES = 16;
const SUITE = "ristretto255-SHA512";
const utf8 = new TextEncoder();

class Refused extends Error {
  constructor(status, retryAfter) {
    super(`HTTP ${status}`);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const toBase64 = (bytes) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// The NIR as hygie.identity.nir.validate_nir spells it, or a reason in French. Checked here because a
// mistyped number would otherwise get an honest-looking "not found".
export function canonicalNir(text) {
  const nir = text.replace(/[\s.\-]/g, "").toUpperCase();
  if (nir.length !== 15) {
    return { reason: `Un numéro de sécurité sociale compte 15 caractères, clé comprise (vous en avez saisi ${nir.length}).` };
  }
  if (!/^\d{5}(\d\d|2A|2B)\d{8}$/.test(nir)) {
    return { reason: "Le numéro ne contient que des chiffres (et 2A ou 2B pour une naissance en Corse)." };
  }
  const digits = nir.slice(0, 13).replace("2A", "19").replace("2B", "18");
  if (97n - (BigInt(digits) % 97n) !== BigInt(nir.slice(13))) {
    return { reason: "La clé (les deux derniers chiffres) ne correspond pas au numéro : vérifiez votre saisie." };
  }
  return { nir };
}

async function call(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, { ...init, cache: "no-store", credentials: "omit" });
  if (!response.ok) {
    throw new Refused(response.status, Number(response.headers.get("Retry-After")) || null);
  }
  return response.json();
}

export async function amIInIt(nir) {
  const key = await call("/breach-check/key");
  if (key.suite !== SUITE) throw new Error(`unexpected suite ${key.suite}`);
  const publicKey = fromBase64(key.public_key);
  const input = utf8.encode(INPUT_LABEL + nir);
  const { blind, blinded } = suite.voprf.blind(input);
  const answer = await call("/breach-check/evaluate", { blinded: toBase64(blinded) });
  const evaluation = fromBase64(answer.evaluated); // proof (c, s: 64 bytes), then the evaluated element
  if (evaluation.length !== 96) throw new Error("malformed evaluation");
  // finalize verifies the DLEQ proof against the published key: a server that used another key to single
  // this browser out is caught here, and no answer is shown.
  const output = suite.voprf.finalize(input, blind, evaluation.subarray(64), blinded, publicKey, evaluation.subarray(0, 64));
  const tag = sha256(concat(utf8.encode(TAG_LABEL), output)).subarray(0, TAG_BYTES);
  const bits = Number(key.prefix_bits);
  const head = ((tag[0] << 24) | (tag[1] << 16) | (tag[2] << 8) | tag[3]) >>> 0;
  const prefix = bits === 0 ? 0 : Math.floor(head / 2 ** (32 - bits));
  const found = await call("/breach-check/lookup", { attempt: answer.attempt, prefix });
  return found.tags.includes(toBase64(tag));
}

function show(kind, title, text, extra) {
  const box = document.getElementById("resultat");
  const alert = document.createElement("div");
  alert.className = `fr-alert fr-alert--${kind}`;
  alert.dataset.result = kind;
  const heading = document.createElement("h2");
  heading.className = "fr-alert__title";
  heading.textContent = title;
  const body = document.createElement("p");
  body.textContent = text;
  alert.append(heading, body);
  if (extra) alert.append(extra);
  box.replaceChildren(alert);
}

function minutes(seconds) {
  const m = Math.max(1, Math.ceil(seconds / 60));
  return m === 1 ? "une minute" : `${m} minutes`;
}

function explain(error) {
  if (error instanceof Refused && error.status === 429) {
    const wait = error.retryAfter ? ` Réessayez dans ${minutes(error.retryAfter)}.` : " Réessayez plus tard.";
    show("warning", "Trop de vérifications pour l'instant",
      "Le nombre de vérifications est limité pour que personne ne puisse essayer tous les numéros." + wait);
  } else if (error instanceof Refused && error.status === 503) {
    show("error", "Service momentanément indisponible",
      "Nous ne pouvons pas répondre maintenant ; aucune réponse n'est donc affichée. Réessayez dans quelques minutes.");
  } else {
    show("error", "Vérification impossible",
      "La réponse du serveur n'a pas pu être obtenue ou vérifiée ; aucune réponse n'est donc affichée. " +
      "Réessayez plus tard.");
  }
}

function setUp() {
  const form = document.getElementById("verification-fuite");
  const field = document.getElementById("nir");
  const group = document.getElementById("nir-groupe");
  const button = document.getElementById("verifier");
  if (!form) return;
  button.disabled = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    group.classList.remove("fr-input-group--error");
    field.removeAttribute("aria-invalid");
    document.getElementById("nir-erreur")?.remove();
    const checked = canonicalNir(field.value);
    if (!checked.nir) {
      group.classList.add("fr-input-group--error");
      field.setAttribute("aria-invalid", "true");
      const message = document.createElement("p");
      message.className = "fr-error-text";
      message.id = "nir-erreur";
      message.textContent = checked.reason;
      group.append(message);
      field.setAttribute("aria-describedby", "nir-aide nir-erreur");
      document.getElementById("resultat").replaceChildren();
      field.focus();
      return;
    }
    field.setAttribute("aria-describedby", "nir-aide");
    button.disabled = true;
    show("info", "Vérification en cours…", "Le calcul se fait dans votre navigateur.");
    try {
      if (await amIInIt(checked.nir)) {
        const advice = document.getElementById("que-faire").content.cloneNode(true);
        show("warning", "Votre numéro figure parmi les personnes concernées",
          "Votre numéro de sécurité sociale figure dans un fichier de données divulgué, pour une violation que " +
          "l'assurance maladie a notifiée. Voici ce que nous vous conseillons :", advice);
      } else {
        show("success", "Votre numéro ne figure pas parmi les personnes concernées",
          "Il n'apparaît dans aucune des violations de données notifiées à ce jour. Si une nouvelle violation " +
          "est découverte, les personnes concernées seront prévenues.");
      }
    } catch (error) {
      explain(error);
    } finally {
      button.disabled = false;
    }
  });
}

setUp();
