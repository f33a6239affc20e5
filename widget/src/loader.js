/* chip's widget loader, served at /wc/widget.js with a short cache lifetime. It adds the widget's
 * bundle, whose URL carries its content hash (so the bundle itself is cached for a year), with the
 * data- attributes of the page's script tag. __BUNDLE__ is filled in by chip. */
(function (d, w) {
  var me = d.currentScript;
  if (!me || (w.chip && w.chip.loaded)) return;
  // calls made before the bundle has arrived wait here; the bundle plays them back
  w.chip = w.chip || function () { (w.chip.q = w.chip.q || []).push(arguments); };
  var bundle = d.createElement("script");
  bundle.src = new URL("__BUNDLE__", me.src).href;
  bundle.async = true;
  if (me.nonce) bundle.nonce = me.nonce;  // a page whose CSP allows scripts by nonce
  for (var i = 0; i < me.attributes.length; i++) {
    var a = me.attributes[i];
    if (a.name.indexOf("data-") === 0) bundle.setAttribute(a.name, a.value);
  }
  (me.parentNode || d.head).appendChild(bundle);
})(document, window);
