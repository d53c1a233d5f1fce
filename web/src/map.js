import { cityMap } from "./_citymap.js";

const el = document.getElementById("map");
if (el) window.smartcity = cityMap(el);
