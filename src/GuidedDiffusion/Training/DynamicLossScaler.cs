namespace GuidedDiffusion.Training;

/// <summary>
/// The original's fp16 loss scaling: the loss is multiplied by 2^lg before backward; a step whose gradients
/// overflow is skipped and lg drops by 1, every good step raises lg by <see cref="Growth"/> (fp16_scale_growth).
/// </summary>
public sealed class DynamicLossScaler
{
    /// <summary>classifier_train.py's initial_lg_loss_scale (fp16_util's own default is 20).</summary>
    public const double InitialLgLossScale = 16.0;

    /// <summary>The original's default fp16_scale_growth.</summary>
    public const double DefaultGrowth = 1e-3;

    /// <summary>Creates a scaler starting at <paramref name="initialLg"/>, raising lg by <paramref name="growth"/> per good step.</summary>
    public DynamicLossScaler(double initialLg = InitialLgLossScale, double growth = DefaultGrowth)
    {
        LgLossScale = initialLg;
        Growth = growth;
    }

    /// <summary>The increase of lg after each step without overflow.</summary>
    public double Growth { get; }

    /// <summary>log2 of the current loss scale.</summary>
    public double LgLossScale { get; set; }

    /// <summary>The factor the loss is multiplied by.</summary>
    public double Scale => Math.Pow(2, LgLossScale);

    /// <summary>Updates the scale after a step; returns whether the optimizer may step.</summary>
    public bool Update(bool overflow)
    {
        if (overflow) { LgLossScale -= 1; return false; }
        LgLossScale += Growth;
        return true;
    }
}
