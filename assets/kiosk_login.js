/* The big screen's sign-in (/login/token#t=<kiosk token>): the token stays in the URL fragment,
   which browsers never send, and is posted from the page's form. Dash also loads every file in
   assets/ on its own pages, where there is no such form and this does nothing. */
(function () {
  function signIn() {
    var form = document.getElementById("kiosk-login");
    if (!form) {
      return;
    }
    var token = new URLSearchParams(window.location.hash.slice(1)).get("t");
    history.replaceState(null, "", window.location.pathname);  // the token leaves the address bar
    if (form.querySelector(".error:not([hidden])")) {
      return;  // the server refused: show why instead of trying again
    }
    if (!token) {
      var error = document.getElementById("login-error");
      error.textContent = "地址中缺少大屏令牌：请使用 /login/token#t=<大屏令牌>";
      error.hidden = false;
      return;
    }
    document.getElementById("kiosk-token").value = token;
    form.submit();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", signIn);
  } else {
    signIn();
  }
})();
