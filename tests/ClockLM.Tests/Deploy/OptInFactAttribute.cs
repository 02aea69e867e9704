namespace ClockLM.Tests.Deploy;

/// <summary>A test that runs only when <c>VARIABLE=1</c> is set (it is long, or needs programs beyond the SDK); skipped
/// visibly otherwise, with the variable named in the skip reason.</summary>
public sealed class OptInFactAttribute : FactAttribute
{
    public OptInFactAttribute(string variable, string what)
    {
        if (Environment.GetEnvironmentVariable(variable) != "1")
            Skip = $"{what} runs only with {variable}=1 (see docs/deploy.md)";
    }
}
