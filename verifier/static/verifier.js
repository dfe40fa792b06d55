// intyg employer page: poll a pending request, and post a same-device response_code.
(function () {
  "use strict";
  var request = document.getElementById("request");
  if (request && request.dataset.statusUrl) {
    var poll = function () {
      fetch(request.dataset.statusUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (body && body.status !== request.dataset.status) { window.location.reload(); }
          else { window.setTimeout(poll, 1500); }
        })
        .catch(function () { window.setTimeout(poll, 4000); });
    };
    window.setTimeout(poll, 1500);
  }
  var redeem = document.getElementById("redeem");
  if (redeem) {
    // The code is in the fragment (never sent to a server); drop it from history at once.
    var params = new URLSearchParams(window.location.hash.slice(1));
    var code = params.get("response_code");
    history.replaceState(null, "", window.location.pathname);
    if (code) {
      redeem.elements.response_code.value = code;
      redeem.submit();
    }
  }
})();
