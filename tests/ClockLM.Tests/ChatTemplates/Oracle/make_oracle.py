"""Writes jinja-oracle.json: what Python's Jinja2, set up as Hugging Face transformers' apply_chat_template
sets it up, renders for the published templates (../PublishedTemplates.cs) and the snippets (snippets.txt).

Run from this folder with Jinja2 3.1 installed:  python3 make_oracle.py
ChatTemplateOracleTests renders the same cases with ClockLM and compares."""
import json, re
from datetime import datetime
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
from jinja2.exceptions import TemplateError

# The environment transformers builds in _compile_jinja_template.
def raise_exception(message):
    raise TemplateError(message)

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def strftime_now(fmt):
    return datetime(2024, 7, 26, 9, 5, 3).strftime(fmt)  # fixed clock; the test sets the same one

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

def published_templates(path):
    src = open(path, encoding="utf-8").read()
    out = {}
    for m in re.finditer(r'public const string (\w+) = (""".*?"""|"(?:[^"\\]|\\.)*");', src, re.S):
        name, lit = m.group(1), m.group(2)
        if lit.startswith('"""'):
            body = lit[3:-3]
            if body.startswith("\n"):  # multi-line raw literal, closing quotes at column 0
                body = body[1:-1]
        else:
            body = bytes(lit[1:-1], "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
        out[name] = body
    return out

templates = published_templates("../PublishedTemplates.cs")
snippets = [s for s in open("snippets.txt", encoding="utf-8").read().split("\n====\n") if s.strip()]

system = {"role": "system", "content": "You are a helpful assistant"}
tool_turns = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123def", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "22C", "tool_call_id": "abc123def", "name": "get_weather"},
]
conversations = {
    "llamacpp": [system, {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
                 {"role": "user", "content": "Who are you"}, {"role": "assistant", "content": "   I am an assistant   "},
                 {"role": "user", "content": "Another question"}],
    "hf": [{"role": "user", "content": "Hello, how are you?"}, {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
           {"role": "user", "content": "I'd like to show off how chat templating works!"}],
    "tools": [system] + tool_turns,
    "toolsNoSystem": tool_turns,
    "thinking": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\n4"},
                 {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "<think>\nAgain add.\n</think>\n\n6"}],
    "unicode": [{"role": "user", "content": "Grüße 👋 \"quoted\" \\ back\nline"}, {"role": "assistant", "content": "日本語"}, {"role": "user", "content": "\ttab"}],
    "badAlternation": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
}
conversations["noSystem"] = conversations["llamacpp"][1:]
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
snippet_data = {"data": {"a": "é\"\n\u0001", "b": [1, 2.5, True, None], "c": {}}, "n": 2}

def render(template, conversation, agp, extra):
    ctx = {"messages": conversations[conversation], "add_generation_prompt": agp, "bos_token": "<s>", "eos_token": "</s>",
           "tools": None, "documents": None, **extra}
    try:
        return {"output": env.from_string(template).render(**ctx)}
    except Exception as e:  # raise_exception gives TemplateError; type and undefined errors others
        return {"error": type(e).__name__, "message": str(e)}

cases = []
for name, template in templates.items():
    for conversation in conversations:
        for agp in (True, False):
            extra = {"tools": tools} if conversation.startswith("tools") else {}
            cases.append({"template": name, "conversation": conversation, "addGenerationPrompt": agp, "extra": extra,
                          **render(template, conversation, agp, extra)})
    cases.append({"template": name, "conversation": "llamacpp", "addGenerationPrompt": True, "extra": {"enable_thinking": False},
                  **render(template, "llamacpp", True, {"enable_thinking": False})})
for i, snippet in enumerate(snippets):
    cases.append({"snippet": i, "conversation": "llamacpp", "addGenerationPrompt": True, "extra": snippet_data,
                  **render(snippet, "llamacpp", True, snippet_data)})

with open("jinja-oracle.json", "w", encoding="utf-8") as f:
    json.dump({"generator": f"Jinja2 {jinja2.__version__}, transformers apply_chat_template settings",
               "conversations": conversations, "cases": cases}, f, ensure_ascii=False, indent=0)
print(len(cases), "cases")
