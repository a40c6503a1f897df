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
  slot.replaceChildren();
  if (billing.plan !== "plus") mountSubscribe(slot, billing);
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

// ================================================================ HOOK: "Subscribe" (Stripe)
// Called with an empty element whenever billing is on and the plan is not "plus". This is
// where subscribing with Stripe Elements goes; it is the only place that may load Stripe.js,
// so the script is fetched only on servers where billing is on. The steps:
//   1. load https://js.stripe.com/v3/ with a <script> element (once), and allow
//      https://js.stripe.com in the page's Content-Security-Policy (index.html);
//   2. `POST billing/setup-intent` -> { clientSecret }; mount a Payment Element in `slot`;
//   3. on submit, `stripe.confirmSetup({ elements, redirect: "if_required" })` gives the
//      PaymentMethod id; `POST billing/subscription { paymentMethodId }` answers the new
//      Billing (or 402 with Stripe's decline message: show it with showError);
//   4. `onBillingUpdated(billing)`; later changes arrive as `billing.updated` events.
// The publishable key is not part of the API yet: the server must provide it (for example
// in the setup-intent answer).
export function mountSubscribe(slot, billing) {
  slot.append(el("p", { class: "note" }, "Upgrading to Plus from this page is not available yet."));
}
