using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Tests.ChatTemplates;

/// <summary>Jinja features one at a time; expected strings are what Jinja 3 in Python prints.</summary>
public class ChatTemplateLanguageTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new("system", "You are a helpful assistant"),
        new("user", "Hello"),
        new("assistant", "Hi there"),
        new("user", "Who are you"),
        new("assistant", "   I am an assistant   "),
        new("user", "Another question"),
    ];

    private static string Render(string template, Dictionary<string, object?>? extra = null, ChatTemplateOptions? options = null) =>
        ChatTemplate.Parse(template, options).Render(Conversation, true, "<s>", "</s>", extra);

    [Theory]
    [InlineData("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}", "3 -4 1 2 3.5 1024 7 9")]
    [InlineData("{{ none }} {{ true }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ -3 }}", "None True 1.0 0.30000000000000004 1e+20 -3")]
    [InlineData("{{ {'a': 1, 'b': [1, 'x', none]} }}", "{'a': 1, 'b': [1, 'x', None]}")]
    [InlineData("{{ 1 ~ 'a' ~ none }}|{{ 'ab' + 'cd' }}|{{ 'ab' * 3 }}", "1aNone|abcd|ababab")]
    [InlineData("{{ 'Hello World'[::-1] }}|{{ [1, 2, 3, 4][1:] }}|{{ 'abcdef'[1:5:2] }}|{{ [1, 2, 3][-1] }}|{{ 'abc'[-2:] }}", "dlroW olleH|[2, 3, 4]|bd|3|bc")]
    [InlineData("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 'x' not in ['y'] }} {{ 'k' in {'k': 1} }}", "True False True True True")]
    [InlineData("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not 0 }} {{ 'a' if false else 'b' }} {{ 'c' if true }}", "x y True b c")]
    [InlineData("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }};{% endfor %}",
        "10TrueFalse33;21FalseFalse32;32FalseTrue31;")]
    [InlineData("{% for x in [] %}a{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for i in range(10) %}{% if i == 5 %}{% break %}{% endif %}{% if i is odd %}{% continue %}{% endif %}{{ i }}{% endfor %}", "024")]
    [InlineData("{% for i in range(10) if i is even %}{{ loop.index }}:{{ i }} {% endfor %}", "1:0 2:2 3:4 4:6 5:8 ")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in {'c': 3}|items %}{{ k }}{{ v }}{% endfor %}", "a=1;b=2;c3")]
    [InlineData("{% for x in [1, 2] %}{% for y in 'ab' %}{{ loop.index }}{{ y }}{% endfor %}{{ loop.index }}|{% endfor %}", "1a2b1|1a2b2|")]
    [InlineData("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", "1")]
    [InlineData("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}", "4")]
    [InlineData("{% set a, b = [1, 2] %}{{ b }}{{ a }}", "21")]
    [InlineData("{% set x %}a{{ 1 + 1 }}b{% endset %}{{ x|upper }}", "A2B")]
    [InlineData("{% if false %}1{% elif none %}2{% elif 'x' %}3{% else %}4{% endif %}", "3")]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}", "Hi Bob! Hi Al?")]
    [InlineData("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inside{% endcall %}", "<b>inside</b>")]
    [InlineData("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}", "120")]
    [InlineData("{% filter upper %}abc{{ 'd' }}{% endfilter %}", "ABCD")]
    [InlineData("{% raw %}{{ x }}{% if %}{% endraw %}", "{{ x }}{% if %}")]
    public void Renders(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ '  a b  '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a b  c '.split() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a-b-c'.split('-', 1) }}",
        "a b|['a', 'b', '', 'c']|['a', 'b', 'c']|hi|['a', 'b-c']")]
    [InlineData("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'hello world'.title() }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'ABC'.lower() }}",
        "True True Hello World bba abc")]
    [InlineData("{{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'x\\n\\n'.rstrip() }}|{{ 'a</think>b</think>c'.split('</think>')[-1] }}", "x\n|x|c")]
    [InlineData("{{ 'hello world'|capitalize }}|{{ 'hello-world foo'|title }}|{{ [1, 2, 3]|first }}{{ [1, 2, 3]|last }}|{{ [1, 2, 3]|length }}|{{ 'abc'|count }}",
        "Hello world|Hello-World Foo|13|3|3")]
    [InlineData("{{ missing|default('d') }}|{{ ''|default('e', true) }}|{{ ''|default('f') }}|{{ none|d('g', boolean=true) }}", "d|e||g")]
    [InlineData("{{ '3.7'|float|round|int }} {{ 2.5|round }} {{ 3.14159|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ '42'|int + 1 }} {{ 'x'|int }} {{ -3|abs }}",
        "4 2.0 3.14 3.0 43 0 3")]
    [InlineData("{{ [3, 1, 2]|sort|join(',') }} {{ ['b', 'A', 'c']|sort|join }} {{ [3, 1, 2]|sort(reverse=true)|list }} {{ 'abc'|reverse }} {{ [1, 2]|reverse|list }}",
        "1,2,3 Abc [3, 2, 1] cba [2, 1]")]
    [InlineData("{{ [1, 2, 2, 1]|unique|list }} {{ [1, 2, 3]|sum }} {{ [4, 2, 8]|min }}{{ [4, 2, 8]|max }} {{ range(3)|list }} {{ range(5, 0, -2)|list }}",
        "[1, 2] 6 28 [0, 1, 2] [5, 3, 1]")]
    [InlineData("{{ '  x  '|trim }}|{{ 'a\\nb'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a b'|replace(' ', '_') }}|{{ '<a>'|e }}",
        "x|a\n  b|  a\n  b|a_b|&lt;a&gt;")]
    [InlineData("{{ [1, 'a', none]|map('string')|join('-') }}|{{ [0, 1, 2]|select|list }}|{{ [0, 1, 2]|reject('odd')|list }}", "1-a-None|[1, 2]|[0, 2]")]
    [InlineData("{{ 1 is number }}{{ 'a' is string }}{{ none is none }}{{ x is defined }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}",
        "TrueTrueTrueFalseTrueTrueTrueFalse")]
    [InlineData("{{ 3 is divisibleby 3 }}{{ 2 is in [1, 2] }}{{ 2 is equalto 2 }}{{ 1 is not none }}{{ true is sameas true }}{{ 1 is integer }}{{ 1.5 is float }}{{ 'x' is callable }}",
        "TrueTrueTrueTrueTrueTrueTrueFalse")]
    public void FiltersTestsAndMethods(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void SelectAttrAndMapReadMessageFields()
    {
        Assert.Equal("Hello|Who are you|Another question",
            Render("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join('|') }}"));
        Assert.Equal("2", Render("{{ messages|rejectattr('role', 'in', ['system', 'user'])|list|length }}"));
        Assert.Equal("6", Render("{{ messages|selectattr('tool_calls', 'undefined')|list|length }}"));
    }

    [Fact]
    public void ToJsonFollowsPythonJsonDumps()
    {
        var extra = new Dictionary<string, object?> { ["data"] = System.Text.Json.Nodes.JsonNode.Parse("""{"a": "é\"\n\u0001", "b": [1, 2.5, true, null], "c": {}}""") };
        Assert.Equal("{\"a\": \"é\\\"\\n\\u0001\", \"b\": [1, 2.5, true, null], \"c\": {}}", Render("{{ data|tojson }}", extra));
        Assert.Equal("{\n  \"a\": \"é\\\"\\n\\u0001\",\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"c\": {}\n}", Render("{{ data|tojson(indent=2) }}", extra));
        Assert.Equal("{\"a\":\"\\u00e9\\\"\\n\\u0001\",\"b\":[1,2.5,true,null],\"c\":{}}",
            Render("{{ data|tojson(ensure_ascii=true, separators=(',', ':')) }}", extra));
        Assert.Equal("{\"x\": 1, \"y\": 2}", Render("{{ {'y': 2, 'x': 1}|tojson(sort_keys=true) }}"));
    }

    [Fact]
    public void WhitespaceControlMatchesTrimBlocksAndLstripBlocks()
    {
        Assert.Equal("abc", Render("a  {%- if true -%}  b  {%- endif -%}  c"));
        Assert.Equal("x\n    y\nz", Render("x\n    {% if true %}\n    y\n    {% endif %}\nz"));
        Assert.Equal("a\n  1", Render("a\n  {{ 1 }}\n"));                       // '{{' is not lstripped; one final newline is dropped
        Assert.Equal("a\n  b", Render("a\n  {%+ if true %}b{% endif %}"));    // '+' keeps the indentation
        Assert.Equal("a\n\nb\n", Render("a\n{% if true +%}\nb\n{% endif %}\n"));   // '+%}' keeps the newline
        Assert.Equal("a  b", Render("a {# c #} b"));
        Assert.Equal("a\nb", Render("a\n  {# comment #}\nb"));
        Assert.Equal("a\nb", Render("a\r\n{% if true %}\r\nb{% endif %}"));          // line endings become \n first
        Assert.Equal("ab", Render("{{- 'a' -}}\n\n   {{- 'b' -}}"));
    }

    [Fact]
    public void StrftimeNowReadsTheConfiguredClock()
    {
        var options = ChatTemplateOptions.Default with { Now = () => new DateTime(2024, 7, 26, 9, 5, 3) };
        Assert.Equal("26 Jul 2024 09:05:03 Friday", Render("{{ strftime_now('%d %b %Y %H:%M:%S %A') }}", options: options));
    }

    [Fact]
    public void ExtraVariablesAndDefaultsAreVisible()
    {
        Assert.Equal("None|True|<s></s>|3|x",
            Render("{{ tools }}|{{ add_generation_prompt }}|{{ bos_token }}{{ eos_token }}|{{ n + 1 }}|{{ flag }}",
                new() { ["n"] = 2, ["flag"] = "x" }));
    }

    [Fact]
    public void RuntimeErrorsAreTypedAndPositioned()
    {
        var attr = Assert.Throws<ChatTemplateException>(() => Render("line one\n{{ nope.field }}"));
        Assert.Equal((2, 8), (attr.Line, attr.Column));
        Assert.Contains("undefined", attr.Message);
        var add = Assert.Throws<ChatTemplateException>(() => Render("{{ 'a' + 1 }}"));
        Assert.Contains("unsupported operand types for +: 'str' and 'int'", add.Message);
        var iterate = Assert.Throws<ChatTemplateException>(() => Render("{% for x in 5 %}{% endfor %}"));
        Assert.Contains("'int' object is not iterable", iterate.Message);
        var json = Assert.Throws<ChatTemplateException>(() => Render("{{ namespace()|tojson }}"));
        Assert.Contains("not JSON serializable", json.Message);
        var setAttr = Assert.Throws<ChatTemplateException>(() => Render("{% set d = {} %}{% set d.x = 1 %}"));
        Assert.Contains("namespace", setAttr.Message);
    }

    [Fact]
    public void RaiseExceptionSurfacesTheTemplateMessage()
    {
        var e = Assert.Throws<ChatTemplateRaisedException>(() => Render("ok\n  {{ raise_exception('Bad role: ' ~ messages[0].role) }}"));
        Assert.Equal("Bad role: system", e.TemplateMessage);
        Assert.Equal(2, e.Line);
        Assert.Equal(6, e.Column);
        Assert.Contains("2:6", e.Message);
    }
}
