// The billing panel: the plan, its status and limits, and cancelling. While billing is off
// the server answers 404 to /billing, and the panel (and its entry in the navigation) stays
// hidden. No payment script is loaded unless billing is on (see `mountSubscribe`).

import { api } from "./api.js";
import { $, el, showError } from "./dom.js";
import { state } from "./state.js";

const PLAN_NAMES = { free: "Free", plus: "Plus" };

/** Ask whether billing is on, and show the plan if it is. */
export async function loadBilling() {
  try {
    state.billing = await api("billing");
  } catch (err) {
    if (err.status === 404) state.billing = null; // billing is off on this server
    else return; // unknown for now: keep what was shown
  }
  renderBilling();
}

/** `billing.updated`: the plan changed (a webhook, or another tab). */
export function onBillingUpdated(billing) {
  state.billing = billing;
  renderBilling();
}

/** True when billing is on (the panel has something to show). */
export function billingEnabled() {
  return state.billing !== null;
}

function dateText(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleDateString([], { year: "numeric", month: "long", day: "numeric" });
}

function renderBilling() {
  const billing = state.billing;
  $("billing-nav").hidden = !billing;
  if (!billing) {
    $("billing-facts").replaceChildren();
    $("billing-subscribe").replaceChildren();
    return;
  }
  const limits = billing.limits || {};
  const facts = [
    ["Plan", PLAN_NAMES[billing.plan] || billing.plan],
    ["Status", billing.status],
    [billing.cancelAtPeriodEnd ? "Ends on" : "Renews on", billing.currentPeriodEnd ? dateText(billing.currentPeriodEnd) : null],
    ["Members per group", limits.maxGroupMembers],
    ["Page fetches per day", limits.parseJobsPerDay],
  ];
  $("billing-facts").replaceChildren(
    ...facts.filter(([, value]) => value != null && value !== "").flatMap(([term, value]) => [
      el("dt", {}, term),
      el("dd", { dataset: { fact: term } }, String(value)),
    ]),
  );
  const cancellable = billing.plan === "plus" && !billing.cancelAtPeriodEnd && billing.status !== "canceled";
  $("billing-cancel").hidden = !cancellable;
  $("billing-note").textContent = billing.cancelAtPeriodEnd
    ? "Your subscription is cancelled and ends with the paid period."
    : "";
  const slot = $("billing-subscribe");
  if (billing.plan === "plus") slot.replaceChildren();
  else if (!slot.hasChildNodes()) mountSubscribe(slot);
  // Otherwise an upgrade may be in progress (a card form, or "Try another card"): an update
  // that leaves the plan below Plus, such as the webhook about a declined first payment
  // arriving late, must not throw away the card someone is typing.
}

/** Cancel the subscription at the end of the paid period. */
export async function cancelSubscription() {
  showError("billing-error", null);
  const button = $("billing-cancel");
  button.disabled = true;
  try {
    onBillingUpdated(await api("billing/subscription", { method: "DELETE" }));
  } catch (err) {
    showError("billing-error", err);
  } finally {
    button.disabled = false;
  }
}

// ================================================================ "Subscribe" (Stripe)
// Called with an empty element whenever billing is on and the plan is not "plus". It is the
// only place that loads Stripe.js, and only when the person asks to upgrade, so the script
// is never fetched on servers where billing is off. The server says where Stripe.js comes
// from and which publishable key to use (GET billing/config), and its CSP allows that
// origin only while billing is on. The card goes from Stripe's Card Element to Stripe;
// Parley gets the PaymentMethod id of the confirmed SetupIntent.

let stripeScript = null; // the loading of Stripe.js, once per page

function loadStripeJs(url) {
  if (!stripeScript) {
    stripeScript = new Promise((resolve, reject) => {
      const script = el("script", { src: url });
      script.addEventListener("load", () => resolve(window.Stripe));
      script.addEventListener("error", () => {
        stripeScript = null; // try again next time
        script.remove();
        reject(new Error("The payment form could not be loaded; try again shortly."));
      });
      document.head.append(script);
    });
  }
  return stripeScript;
}

/** The "Upgrade to Plus" offer; its button loads Stripe.js and the card form. */
function mountSubscribe(slot) {
  const upgrade = el("button", { type: "button", id: "billing-upgrade" }, "Upgrade to Plus");
  upgrade.addEventListener("click", () => startCheckout(slot, upgrade));
  slot.append(
    el("p", { class: "note" }, "Plus: groups of up to 5,000 members and 10,000 page fetches a day."),
    upgrade,
  );
}

/** A card form for a new SetupIntent: Stripe.js, the Card Element, a "Subscribe" button. */
async function startCheckout(slot, trigger) {
  showError("billing-error", null);
  trigger.disabled = true;
  try {
    const config = await api("billing/config");
    const Stripe = await loadStripeJs(config.stripeJsUrl);
    const stripe = Stripe(config.publishableKey);
    const { clientSecret } = await api("billing/setup-intent", { method: "POST" });
    const card = stripe.elements().create("card");
    const submit = el("button", { type: "submit" }, "Subscribe");
    const form = el(
      "form",
      { id: "billing-card-form", "aria-label": "Card" },
      el("div", { id: "billing-card", class: "card-field" }),
      submit,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      subscribeWith(slot, { stripe, card, clientSecret, submit });
    });
    slot.replaceChildren(form);
    card.mount("#billing-card");
  } catch (err) {
    showError("billing-error", err);
    trigger.disabled = false;
  }
}

/** Confirm the SetupIntent with the card (Stripe), then subscribe with it (Parley). */
async function subscribeWith(slot, { stripe, card, clientSecret, submit }) {
  showError("billing-error", null);
  submit.disabled = true;
  try {
    const { setupIntent, error } = await stripe.confirmCardSetup(clientSecret, {
      payment_method: { card },
    });
    if (error) throw new Error(error.message || "The card was not accepted.");
    const paymentMethodId =
      typeof setupIntent.payment_method === "string" ? setupIntent.payment_method : setupIntent.payment_method.id;
    onBillingUpdated(await api("billing/subscription", { method: "POST", json: { paymentMethodId } }));
  } catch (err) {
    // A declined card used up this SetupIntent: offer a fresh form, with the reason.
    const retry = el("button", { type: "button", id: "billing-upgrade" }, "Try another card");
    retry.addEventListener("click", () => startCheckout(slot, retry));
    slot.replaceChildren(retry);
    showError("billing-error", err);
  }
}
