// "Get replies by email": the form's states. The address is checked here before anything is sent;
// chip's refusal, if any, is shown the same way.
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export class EmailForm {
  constructor(v, t) {
    this.v = v;
    this.t = t;
  }

  /** The trimmed address when it looks like one (the form then waits for chip), else null (and says so). */
  check(email) {
    const v = this.v;
    email = String(email || "").trim();
    v.emailInput.value = email;
    if (!EMAIL.test(email)) {
      this.refused(null, "");
      return null;
    }
    v.emailInput.removeAttribute("aria-invalid");
    v.emailError.hidden = true;
    v.emailButton.disabled = true;
    return email;
  }

  saved(email) {
    const v = this.v;
    v.emailInput.value = email;
    v.emailButton.disabled = false;
    v.emailButton.textContent = this.t("emailSaved");
  }

  /** error: chip's `error` event (null: the address is not one); explained: what to say otherwise. */
  refused(error, explained) {
    const v = this.v;
    v.emailButton.disabled = false;
    v.emailButton.textContent = this.t("emailSave");
    v.emailInput.setAttribute("aria-invalid", "true");
    v.emailError.textContent = !error || error.code === "invalid_command" ? this.t("emailInvalid") : explained;
    v.emailError.hidden = false;
  }
}
