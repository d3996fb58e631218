/* The scan `this` reads fields with (lua/jfield.h): a look at a text the
 * thread scanned last finds members where the first scan saw them (the last
 * of repeated keys, absent ones absent), a look after another text was
 * scanned finds them in its own text, and a text with more members than the
 * scanner keeps, or one it is unsure of, is scanned again. */
#include "lua/jfield.h"
#include <stdio.h>
#include <string.h>

#include "check.h"

/* The value of key in text as _again sees it ("" when absent, "?" unsure). */
static const char *again(const char *text, const char *key) {
  static char buf[128];
  sl_jfield_t f;
  int kind = sl_ljson_field_again(text, strlen(text), key, strlen(key), &f);
  if (kind == SL_JF_ABSENT) return "";
  if (kind == SL_JF_UNSURE) return "?";
  snprintf(buf, sizeof buf, "%d:%.*s", kind, (int)f.len, text + f.off);
  return buf;
}

static void first(const char *text) {
  sl_jfield_t f;
  sl_ljson_field(text, strlen(text), "n", 1, &f);
}

static void same_text(void) {
  const char *t = "{\"n\":1,\"s\":\"ab\",\"o\":{\"x\":[1]},\"d\":1,\"d\":\"last\",\"t\":true}";
  first(t);
  CHECK(!strcmp(again(t, "s"), "1:ab"), "s: %s", again(t, "s"));
  CHECK(!strcmp(again(t, "o"), "7:{\"x\":[1]}"), "o: %s", again(t, "o"));
  CHECK(!strcmp(again(t, "d"), "1:last"), "the last of repeated keys: %s", again(t, "d"));
  CHECK(!strcmp(again(t, "t"), "4:true"), "t: %s", again(t, "t"));
  CHECK(!strcmp(again(t, "id"), ""), "absent: %s", again(t, "id"));
  CHECK(!strcmp(again(t, "n"), "3:1"), "n: %s", again(t, "n"));
}

static void other_text_between(void) {
  char a[] = "{\"n\":1,\"v\":\"a\"}";
  char b[] = "{\"n\":1000,\"pad\":\"xxxx\",\"v\":\"bbb\"}";
  first(a);
  first(b);
  CHECK(!strcmp(again(a, "v"), "1:a"), "a's own v: %s", again(a, "v"));
  CHECK(!strcmp(again(b, "v"), "1:bbb"), "b's own v: %s", again(b, "v"));
}

static void many_members(void) {
  char t[1024] = "{";
  for (int i = 0; i < 40; i++)
    snprintf(t + strlen(t), sizeof t - strlen(t), "%s\"k%d\":%d", i ? "," : "", i, i * 10);
  strcat(t, "}");
  first(t);
  CHECK(!strcmp(again(t, "k39"), "3:390"), "beyond the kept members: %s", again(t, "k39"));
  CHECK(!strcmp(again(t, "k0"), "3:0"), "k0: %s", again(t, "k0"));
  CHECK(!strcmp(again(t, "k40"), ""), "absent: %s", again(t, "k40"));
}

static void unsure(void) {
  const char *t = "{\"n\":1,\"bad\":tru}";
  first(t);
  CHECK(!strcmp(again(t, "n"), "?"), "an invalid text stays unsure: %s", again(t, "n"));
}

int main(void) {
  RUN(same_text);
  RUN(other_text_between);
  RUN(many_members);
  RUN(unsure);
  return check_report("jfield");
}
