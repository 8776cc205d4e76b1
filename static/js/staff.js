// Staff pages: what is typed in a follow-up survives every failed save.
//
// * Each note box keeps a draft in localStorage while it is typed, restored when the page is opened
//   again and cleared once the server says "Saved".
// * A save that meets an expired session (401) opens a sign-in in place; a missing or stale CSRF cookie
//   (403) fetches a fresh token and saves again once; anything else says so next to the form. The card
//   is never swapped for a login page, so the note stays in its box.
// * After a save, focus goes to the card's message instead of the top of the page.
// An external file (no inline script), so it runs under the Content-Security-Policy.
(function () {
  "use strict";
  var DRAFT_PREFIX = "churn-draft:";
  var SESSION_URL = document.documentElement.getAttribute("data-session-url") || "/staff/session/";
  var pendingForm = null;

  function storage() {
    try { return window.localStorage; } catch (e) { return null; }
  }

  function saveDraft(box) {
    var store = storage();
    if (!store || !box.dataset.draftKey) return;
    if (box.value) store.setItem(DRAFT_PREFIX + box.dataset.draftKey, box.value);
    else store.removeItem(DRAFT_PREFIX + box.dataset.draftKey);
  }

  function restoreDrafts(root) {
    var store = storage();
    if (!store) return;
    root.querySelectorAll("textarea[data-draft-key]").forEach(function (box) {
      var draft = store.getItem(DRAFT_PREFIX + box.dataset.draftKey);
      if (draft && !box.value) {
        box.value = draft;
        var details = box.closest("details");
        if (details) details.open = true;
      }
    });
  }

  function clearDrafts(root) {
    var store = storage();
    if (!store) return;
    root.querySelectorAll("textarea[data-draft-key]").forEach(function (box) {
      store.removeItem(DRAFT_PREFIX + box.dataset.draftKey);
    });
  }

  function problem(form, text) {
    var slot = form.querySelector("[data-role=save-problem]");
    if (!slot) return;
    slot.textContent = text;
    slot.hidden = !text;
  }

  function setToken(token) {
    document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRFToken": token }));
    document.querySelectorAll("input[name=csrfmiddlewaretoken]").forEach(function (input) {
      input.value = token;
    });
  }

  function resubmit(form) {
    form.dataset.retried = "1";
    problem(form, "");
    window.htmx.trigger(form, "submit");
  }

  function freshSession() {
    return fetch(SESSION_URL, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); });
  }

  function openSignIn(form) {
    var dialog = document.getElementById("signin-dialog");
    pendingForm = form;
    problem(form, "Your session has ended. Sign in to save; your note is kept.");
    if (!dialog) return;
    dialog.querySelector("[data-role=signin-error]").textContent = "";
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    var user = dialog.querySelector("input[name=username]");
    if (user) user.focus();
  }

  function signIn(event) {
    event.preventDefault();
    var signinForm = event.target;
    var dialog = signinForm.closest("dialog");
    var error = dialog.querySelector("[data-role=signin-error]");
    freshSession()
      .then(function (session) {
        var body = new FormData(signinForm);
        return fetch(SESSION_URL, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": session.csrf_token, "Accept": "application/json" },
          body: body,
        });
      })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        if (!result.ok || !result.data.authenticated) {
          error.textContent = (result.data.errors || ["This account cannot use the staff pages."]).join(" ");
          return;
        }
        setToken(result.data.csrf_token);
        signinForm.reset();
        dialog.close();
        if (pendingForm && document.body.contains(pendingForm)) resubmit(pendingForm);
        pendingForm = null;
      })
      .catch(function () {
        error.textContent = "The server could not be reached. Try again.";
      });
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-draft-key]")) saveDraft(event.target);
  });

  document.addEventListener("htmx:responseError", function (event) {
    var form = event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    if (!form) return;
    var status = event.detail.xhr.status;
    if (status === 401) {
      openSignIn(form);
    } else if (status === 403 && !form.dataset.retried) {
      freshSession()
        .then(function (session) {
          if (!session.authenticated) { openSignIn(form); return; }
          setToken(session.csrf_token);
          resubmit(form);
        })
        .catch(function () { problem(form, "Not saved: the server could not be reached. Your note is kept."); });
    } else {
      problem(form, "Not saved (the server answered " + status + "). Your note is kept; try again.");
    }
  });

  document.addEventListener("htmx:sendError", function (event) {
    var form = event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    if (form) problem(form, "Not saved: the server could not be reached. Your note is kept; try again.");
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    // An outerHTML swap replaces the target: find the new card by its id.
    var old = event.detail.target;
    var card = old && old.id ? document.getElementById(old.id) : old;
    if (!card || !card.querySelector) return;
    var saved = card.querySelector("[data-role=saved]");
    if (saved) {
      clearDrafts(card);
      saved.focus();
    } else {
      restoreDrafts(card);
      var trouble = card.querySelector("[role=alert]:not([hidden]), textarea[data-draft-key]");
      if (trouble) trouble.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    restoreDrafts(document);
    var signinForm = document.getElementById("signin-form");
    if (signinForm) signinForm.addEventListener("submit", signIn);
    document.querySelectorAll("[data-role=signin-cancel]").forEach(function (button) {
      button.addEventListener("click", function () { button.closest("dialog").close(); });
    });
  });
})();

// A form with data-confirm asks before it is sent (instead of an inline onsubmit, which the
// Content-Security-Policy refuses).
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
