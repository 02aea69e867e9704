using System.Reflection;
using System.Text.Json;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Tests.ChatTemplates;

/// <summary>
/// Compares ClockLM's renderer with Python's Jinja2 set up as Hugging Face's apply_chat_template sets it up:
/// Oracle/jinja-oracle.json holds what Jinja2 rendered (Oracle/make_oracle.py) for every published template
/// × several conversations, and for the feature snippets in Oracle/snippets.txt.
/// </summary>
public class ChatTemplateOracleTests
{
    private static readonly string OracleDir = Path.Combine(SharedData.RepoRoot, "tests", "ClockLM.Tests", "ChatTemplates", "Oracle");

    [Fact]
    public void EveryCaseRendersAsJinja2Does()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(OracleDir, "jinja-oracle.json")));
        var root = doc.RootElement;
        var snippets = File.ReadAllText(Path.Combine(OracleDir, "snippets.txt")).Split("\n====\n")
            .Where(s => !string.IsNullOrWhiteSpace(s)).ToArray();
        var options = ChatTemplateOptions.Default with { Now = () => new DateTime(2024, 7, 26, 9, 5, 3) };
        var conversations = root.GetProperty("conversations");
        var failures = new List<string>();
        int count = 0, errors = 0;
        foreach (var c in root.GetProperty("cases").EnumerateArray())
        {
            count++;
            string name;
            string template;
            if (c.TryGetProperty("template", out var templateName))
            {
                name = templateName.GetString()!;
                var field = typeof(PublishedTemplates).GetField(name, BindingFlags.Public | BindingFlags.Static)
                            ?? throw new InvalidOperationException($"PublishedTemplates has no {name}");
                template = (string)field.GetRawConstantValue()!;
            }
            else
            {
                int index = c.GetProperty("snippet").GetInt32();
                name = $"snippet {index}";
                template = snippets[index];
            }
            string conversation = c.GetProperty("conversation").GetString()!;
            bool addGenerationPrompt = c.GetProperty("addGenerationPrompt").GetBoolean();
            name += $" / {conversation} / add_generation_prompt={addGenerationPrompt}";
            var extra = new Dictionary<string, object?> { ["messages"] = conversations.GetProperty(conversation).Clone() };
            foreach (var p in c.GetProperty("extra").EnumerateObject()) extra[p.Name] = p.Value.Clone();

            string? expected = c.TryGetProperty("output", out var o) ? o.GetString() : null;
            string? error = c.TryGetProperty("error", out var e) ? e.GetString() : null;
            string? message = c.TryGetProperty("message", out var m) ? m.GetString() : null;
            if (error != null) errors++;
            try
            {
                string actual = ChatTemplate.Parse(template, options).Render([], addGenerationPrompt, "<s>", "</s>", extra);
                if (expected == null) failures.Add($"{name}: Jinja2 raised {error}: {message}; ClockLM rendered {JsonSerializer.Serialize(actual)}");
                else if (actual != expected) failures.Add($"{name}:\n  Jinja2  {JsonSerializer.Serialize(expected)}\n  ClockLM {JsonSerializer.Serialize(actual)}");
            }
            catch (ChatTemplateRaisedException ex)
            {
                if (error != "TemplateError" || message != ex.TemplateMessage)
                    failures.Add($"{name}: ClockLM raised '{ex.TemplateMessage}'; Jinja2 gave {error ?? JsonSerializer.Serialize(expected)} {message}");
            }
            catch (ChatTemplateException ex)
            {
                if (error == null || error == "TemplateError")
                    failures.Add($"{name}: ClockLM failed with {ex.Message}; Jinja2 gave {error ?? JsonSerializer.Serialize(expected)} {message}");
            }
        }
        Assert.True(count > 300 && errors > 10, $"oracle file has {count} cases, {errors} errors");
        Assert.True(failures.Count == 0, $"{failures.Count} of {count} cases differ from Jinja2:\n" + string.Join("\n", failures));
    }
}
